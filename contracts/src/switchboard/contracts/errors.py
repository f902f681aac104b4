"""The typed error reply every request subject sends when it cannot answer."""

from __future__ import annotations

import enum

from switchboard.contracts.base import Message, ShortText


class ErrorCode(enum.StrEnum):
    """Why a request failed; callers branch on this, never on the message text."""

    BAD_REQUEST = "bad_request"
    """The request could not be decoded or failed validation; ``field`` names the culprit."""
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    """The request was understood but refused by policy."""
    UNAVAILABLE = "unavailable"
    """A dependency (database, carrier) is down; retrying later may succeed."""
    INTERNAL = "internal"
    ERASED = "erased"
    """The data asked for was erased (its key destroyed); it cannot be had again."""


class ErrorReply(Message):
    """Reply body sent with the ``Nats-Service-Error`` headers when a request fails."""

    code: ErrorCode
    message: ShortText
    """A full sentence naming what was wrong, safe to log (never echoes personal data)."""
    field: str | None = None
    """The JSON path of the offending field, e.g. ``$.call_id`` (also when it is missing), or
    ``$`` when the body as a whole is wrong (not JSON, not an object, a rule across fields);
    always set for ``bad_request``."""
    subject: str | None = None
    """The subject the failing request was sent to."""

    @property
    def status(self) -> str:
        """The numeric code placed in the ``Nats-Service-Error-Code`` header."""
        return _STATUS[self.code]


_STATUS = {
    ErrorCode.BAD_REQUEST: "400",
    ErrorCode.NOT_FOUND: "404",
    ErrorCode.REJECTED: "403",
    ErrorCode.UNAVAILABLE: "503",
    ErrorCode.INTERNAL: "500",
    ErrorCode.ERASED: "410",
}
