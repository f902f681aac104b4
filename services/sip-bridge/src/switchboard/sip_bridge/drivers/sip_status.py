"""SIP response codes and the failure reasons they mean to a contact centre.

Shared by the simulated carrier (which answers with these codes) and the LiveKit driver
(which receives them from the SIP service) so both report the same reason for the same
status.
"""

from __future__ import annotations

import re

from switchboard.contracts.transfer import FailureReason

BUSY_HERE = 486
TEMPORARILY_UNAVAILABLE = 480
DECLINE = 603
SERVICE_UNAVAILABLE = 503

REASON_PHRASES: dict[int, str] = {
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    410: "Gone",
    480: "Temporarily Unavailable",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    607: "Unwanted",
    608: "Rejected",
}

_BUSY = frozenset({486, 600})
_NO_ANSWER = frozenset({408, 480, 487})
_DECLINED = frozenset({603, 607, 608})
_SAFE_PHRASE = re.compile(r"[A-Za-z][A-Za-z' -]{0,63}")


def reason_for_status(code: int) -> FailureReason:
    """The failure reason of a final SIP response code."""
    if code in _BUSY:
        return FailureReason.BUSY
    if code in _NO_ANSWER:
        return FailureReason.NO_ANSWER
    if code in _DECLINED:
        return FailureReason.DECLINED
    return FailureReason.CARRIER_ERROR


def phrase(code: int, received: str | None = None) -> str | None:
    """The reason phrase to publish: the far end's when it is plain words (a phrase with
    digits could carry a phone number), else the standard one."""
    if received and _SAFE_PHRASE.fullmatch(received):
        return received
    return REASON_PHRASES.get(code)
