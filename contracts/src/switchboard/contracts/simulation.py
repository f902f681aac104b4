"""Control messages for the sip-bridge's simulated carrier (local runs and fault tests only).

The simulated driver answers ``sb.transfer.simulate`` only when the bridge runs without
LiveKit credentials. A scenario runner scripts, per call, what each successive dial
attempt does, so one bridge process can play answer, busy, no answer and decline.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from switchboard.contracts.base import CallId, Message


class SimOutcome(enum.StrEnum):
    """What the simulated far end does with one dial attempt."""

    ANSWER = "answer"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINE = "decline"
    VOICEMAIL = "voicemail"
    ERROR = "error"
    """The carrier fails (SIP 503)."""


class ScriptCarrier(Message):
    """Script the simulated carrier for one call: outcome of attempt 1, 2, ...

    Attempts beyond the script use the bridge's default outcome.
    """

    call_id: CallId
    outcomes: Annotated[list[SimOutcome], msgspec.Meta(max_length=20)]
    ring_s: Annotated[float, msgspec.Meta(ge=0, le=30)] = 0.05
    """How long the simulated phone rings before its outcome."""


class CarrierScripted(Message):
    """Reply to ``ScriptCarrier``."""

    call_id: CallId
    outcomes: list[SimOutcome]
