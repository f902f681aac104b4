"""Human transfers: the place/cancel commands, their replies and the status events.

One transfer is one state machine: requested → dialing → ringing → answered → briefed →
connected, or failed with a typed reason. Each state is published as an event.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from switchboard.contracts.base import (
    CallId,
    Identifier,
    Message,
    PersonalText,
    ShortText,
    new_id,
)
from switchboard.contracts.escalation import Destination
from switchboard.contracts.handoff import HandoffContext


class TransferMode(enum.StrEnum):
    """Warm: the human is dialled into a consult room and briefed first. Cold: SIP REFER."""

    WARM = "warm"
    COLD = "cold"


class FailureReason(enum.StrEnum):
    """Why a transfer attempt failed."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    VOICEMAIL = "voicemail"
    CALLER_HUNG_UP = "caller_hung_up"
    REJECTED_BY_POLICY = "rejected_by_policy"
    RATE_LIMITED = "rate_limited"
    CARRIER_ERROR = "carrier_error"
    ALL_DESTINATIONS_FAILED = "all_destinations_failed"


class PlaceTransfer(Message):
    """Command (``sb.transfer.place``): transfer the caller to a human."""

    call_id: CallId
    room: Identifier
    caller_identity: Identifier
    destinations: Annotated[list[Destination], msgspec.Meta(min_length=1, max_length=10)]
    mode: TransferMode = TransferMode.WARM
    transfer_id: Identifier = msgspec.field(default_factory=new_id)
    ring_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 20.0
    whisper: PersonalText | None = None
    """What the human hears before being connected (warm transfers)."""
    context: HandoffContext | None = None


class TransferAccepted(Message, tag="accepted", tag_field="outcome"):
    """Reply: the bridge took the transfer; status follows as events."""

    call_id: CallId
    transfer_id: Identifier
    skipped_destination_ids: list[Identifier] = msgspec.field(default_factory=list)
    """Destinations the bridge's own allow-list refused; they will not be dialled."""


class TransferRejected(Message, tag="rejected", tag_field="outcome"):
    """Reply: the bridge refused the transfer before dialling anything."""

    call_id: CallId
    transfer_id: Identifier
    reason: FailureReason
    detail: ShortText = ""


TransferPlaceReply = TransferAccepted | TransferRejected
"""Reply to ``PlaceTransfer``, tagged by its ``outcome`` field."""


class CancelTransfer(Message):
    """Command (``sb.transfer.cancel``): stop a transfer in progress."""

    call_id: CallId
    transfer_id: Identifier
    reason: ShortText = "cancelled by caller"


class TransferDialing(Message):
    """Event: dialling one destination."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    attempt: int


class TransferRinging(Message):
    """Event: the destination is ringing."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    attempt: int


class TransferAnswered(Message):
    """Event: the human answered."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    attempt: int
    consult_room: Identifier | None = None
    """Warm transfers: the room where the human waits to be briefed, apart from the caller."""


class TransferBriefed(Message):
    """Event: the human heard the whisper/summary (warm transfers)."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier


class TransferConnected(Message):
    """Event: the human and the caller are talking."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier


class TransferFailed(Message):
    """Event: an attempt failed. ``final`` is true when no destination is left."""

    call_id: CallId
    transfer_id: Identifier
    reason: FailureReason
    final: bool
    destination_id: Identifier | None = None
    attempt: int = 0
    sip_status: int | None = None
    sip_status_text: ShortText | None = None
    detail: ShortText = ""
    """What happened, for people reading the event (e.g. ``ring timeout``); never personal data."""


class TransferCancelled(Message):
    """Event and reply: the transfer was cancelled."""

    call_id: CallId
    transfer_id: Identifier
    reason: ShortText = ""
