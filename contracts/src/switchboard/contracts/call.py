"""Call lifecycle, agent handoffs, callbacks and recording events (owned by the voice worker)."""

from __future__ import annotations

import datetime as dt
import enum

import msgspec

from switchboard.contracts.base import (
    CallId,
    Identifier,
    LanguageTag,
    Message,
    PhoneNumber,
    ShortText,
    utcnow,
)
from switchboard.contracts.handoff import HandoffContext
from switchboard.contracts.sealed import Sealable


class CallStarted(Sealable):
    """Event: a call reached a voice worker. The number travels sealed (``Sealable``)."""

    call_id: CallId
    room: Identifier
    caller_number: PhoneNumber | None = None
    trunk: Identifier | None = None
    language: LanguageTag = "en"
    started_at: dt.datetime = msgspec.field(default_factory=utcnow)
    """When the call reached the voice worker: the event's CloudEvents ``time``."""


class CallOutcome(enum.StrEnum):
    """How the call ended from the business's point of view."""

    RESOLVED = "resolved"
    TRANSFERRED = "transferred"
    CALLBACK = "callback"
    ABANDONED = "abandoned"
    FAILED = "failed"


class CallEnded(Message):
    """Event: the call is over for the voice worker (after a transfer, the caller goes on
    talking with the human)."""

    call_id: CallId
    outcome: CallOutcome
    duration_s: float = 0.0
    """How long the call lasted for the voice worker, in seconds (from ``started_at`` to
    ``ended_at``, measured on a monotonic clock)."""
    ended_at: dt.datetime = msgspec.field(default_factory=utcnow)
    """When the call ended for the voice worker: the event's CloudEvents ``time``."""
    started_at: dt.datetime | None = None
    """When the call reached the voice worker: ``call.started``'s ``started_at``."""
    transfer_id: Identifier | None = None
    """The last human transfer placed during the call (the one that connected when
    ``outcome`` is ``transferred``): the ``transfer_id`` of its ``transfer.*`` events.
    None when no transfer was placed."""
    recording_continues: bool = False
    """After a transfer with recording consent granted: Egress goes on recording the caller
    and the human (who heard the consent state in the briefing) until the caller's room is
    deleted, which the sip-bridge does when either of them hangs up."""


class AgentHandedOff(Sealable):
    """Event: one agent handed the conversation to another (AI to AI); the context
    travels sealed (``Sealable``)."""

    call_id: CallId
    from_agent: Identifier
    to_agent: Identifier
    reason: ShortText = ""
    context: HandoffContext | None = None
    decision_id: Identifier | None = None
    """The router's ``HandoffDecision`` behind this handoff (none for plain routing)."""


class CallbackRequested(Sealable):
    """Event: the caller accepted a callback because no human could be reached; the
    number and context travel sealed (``Sealable``)."""

    call_id: CallId
    reason: ShortText
    number: PhoneNumber | None = None
    context: HandoffContext | None = None
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` that led here (a callback target or a failed transfer)."""


class RecordingStopReason(enum.StrEnum):
    """Why recording stopped."""

    CONSENT_REVOKED = "consent_revoked"
    CALL_ENDED = "call_ended"
    ERROR = "error"


class RecordingStarted(Message):
    """Event: recording started; only ever after a consent receipt."""

    call_id: CallId
    consent_sequence: int
    """The ledger sequence of the receipt that allowed recording."""
    egress_id: Identifier | None = None


class RecordingStopped(Message):
    """Event: recording stopped."""

    call_id: CallId
    reason: RecordingStopReason
    egress_id: Identifier | None = None
