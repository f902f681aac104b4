"""Human transfers: the commands, their replies, the human's decision and the status events.

One transfer is one state machine: requested → (queued) → dialing → ringing → answered →
briefed → connected, or failed with a typed reason. Each state is published as an event.
In a warm transfer the human answers into a consult room where the voice worker's
briefing session tells them about the caller; the human's decision (accept, decline,
voicemail, hung up) comes back to the bridge as ``ReportHumanDecision``, and only an
accepting human is moved to the caller.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from switchboard.contracts.base import (
    CallId,
    Identifier,
    Message,
    ShortText,
    new_id,
)
from switchboard.contracts.escalation import Destination

# Defined with the router's decision, which names it; re-exported as part of this module.
from switchboard.contracts.escalation import TransferMode as TransferMode
from switchboard.contracts.handoff import HandoffContext

CALLER_HUNG_UP = "caller_hung_up"
"""``CancelTransfer.reason`` the voice worker sends when the caller hangs up on hold."""


class FailureReason(enum.StrEnum):
    """Why a transfer attempt failed."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    """The far end rejected the call before anyone answered (SIP 603 and the like)."""
    HUMAN_DECLINED = "human_declined"
    """The human answered, heard the briefing and declined, or hung up during it."""
    VOICEMAIL = "voicemail"
    """An answering machine picked up; nothing about the caller was said to it."""
    CALLER_HUNG_UP = "caller_hung_up"
    REJECTED_BY_POLICY = "rejected_by_policy"
    RATE_LIMITED = "rate_limited"
    """The bridge's waiting line for a dial slot is full (a flood, not a busy moment)."""
    QUEUE_TIMEOUT = "queue_timeout"
    """The transfer waited the longest allowed time for a dial slot."""
    CARRIER_ERROR = "carrier_error"
    ALL_DESTINATIONS_FAILED = "all_destinations_failed"
    BRIDGE_LOST = "bridge_lost"
    """The bridge instance running the transfer stopped (a crash): another instance hung
    its legs up and failed it, or the voice worker found no bridge answering."""


class PlaceTransfer(Message):
    """Command (``sb.transfer.place``): transfer the caller to a human."""

    call_id: CallId
    room: Identifier
    caller_identity: Identifier
    destinations: Annotated[list[Destination], msgspec.Meta(min_length=1, max_length=10)]
    mode: TransferMode = TransferMode.WARM
    transfer_id: Identifier = msgspec.field(default_factory=new_id)
    decision_id: Identifier | None = None
    """The router's ``HandoffDecision`` that asked for this transfer; every ``transfer.*``
    event of the transfer carries it."""
    ring_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 20.0
    context: HandoffContext | None = None
    """Only its ids travel on (SIP headers); the briefing is spoken by the voice worker."""
    consult_room: Identifier | None = None
    """Warm transfers: the room the voice worker opened, with its briefing session waiting,
    that the bridge dials the human into. It must be named ``<room>-consult-<token>``.
    Empty: the bridge names one itself (``<room>-consult-<digest of the transfer id>``)."""


BridgeInstance = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]{1,64}$")]
"""A ``nats.micro`` instance id: one subject token, never a wildcard."""


class TransferAccepted(Message, tag="accepted", tag_field="outcome"):
    """Reply: the bridge took the transfer; status follows as events (``transfer.queued``
    first when it must wait for a dial slot)."""

    call_id: CallId
    transfer_id: Identifier
    skipped_destination_ids: list[Identifier] = msgspec.field(default_factory=list)
    """Destinations the bridge's own allow-list refused; they will not be dialled."""
    bridge_instance: BridgeInstance | None = None
    """The bridge instance running the transfer (its ``nats.micro`` id). Once it is gone,
    ``$SRV.PING.sip-bridge.<id>`` has no responder: the voice worker then gives the
    transfer up within seconds, even while other instances answer."""


class TransferRejected(Message, tag="rejected", tag_field="outcome"):
    """Reply: the bridge refused the transfer before dialling anything."""

    call_id: CallId
    transfer_id: Identifier
    reason: FailureReason
    detail: ShortText = ""


TransferPlaceReply = TransferAccepted | TransferRejected
"""Reply to ``PlaceTransfer``, tagged by its ``outcome`` field."""


class CancelTransfer(Message):
    """Command (``sb.transfer.cancel``): stop a transfer in progress; every leg it placed
    is hung up."""

    call_id: CallId
    transfer_id: Identifier
    reason: ShortText = "cancelled by caller"
    """Why, for the ``transfer.cancelled`` event (``caller_hung_up`` when the caller left)."""


class HumanDecision(enum.StrEnum):
    """What the human in the consult room decided, as the briefing session heard it."""

    ACCEPT = "accept"
    """Heard the briefing and takes the call: move them to the caller."""
    DECLINE = "decline"
    VOICEMAIL = "voicemail"
    """A machine answered; the briefing was not given."""
    HUNG_UP = "hung_up"
    """The human left the consult room before deciding (counts as a decline)."""


class DeclineReason(enum.StrEnum):
    """Why a human declined, as a category (their own words never leave the consult room)."""

    BUSY = "busy"
    """On another call or task."""
    WRONG_TEAM = "wrong_team"
    UNAVAILABLE = "unavailable"
    """Not able to take calls now (leaving, in a meeting...)."""
    OTHER = "other"


class ReportHumanDecision(Message):
    """Command (``sb.transfer.decide``): the voice worker's briefing session reports the
    decision of the human who answered attempt ``attempt``."""

    call_id: CallId
    transfer_id: Identifier
    attempt: Annotated[int, msgspec.Meta(ge=1)]
    decision: HumanDecision
    decline_reason: DeclineReason | None = None


class HumanDecisionNoted(Message):
    """Reply to ``ReportHumanDecision``: the bridge acts on it (moves the human, or fails
    the attempt and dials the next destination)."""

    call_id: CallId
    transfer_id: Identifier
    attempt: int
    decision: HumanDecision


class TransferQueued(Message):
    """Event: no dial slot is free now (calls-per-second or concurrency cap); the transfer
    waits its turn instead of failing."""

    call_id: CallId
    transfer_id: Identifier
    position: Annotated[int, msgspec.Meta(ge=1)]
    """1 = next to dial."""
    max_wait_s: float
    """How long the bridge keeps it waiting before failing it with ``queue_timeout``."""
    estimated_wait_s: float | None = None
    """From the calls-per-second rate, when that is what it waits for; unknown (``None``)
    while it waits for a transfer in progress to end."""
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


class TransferDialing(Message):
    """Event: dialling one destination."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    attempt: int
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


class TransferRinging(Message):
    """Event: the destination is ringing."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    attempt: int
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


class TransferAnswered(Message):
    """Event: the far end answered (a person or a machine: the briefing finds out)."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    attempt: int
    consult_room: Identifier | None = None
    """Warm transfers: the room where the human is being briefed, apart from the caller."""
    human_identity: Identifier | None = None
    """Warm transfers: the human's participant identity in the consult room."""
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


class TransferBriefed(Message):
    """Event (warm transfers): the human heard the briefing about the caller and accepted
    the call. Published only on the briefing session's ``accept``, before the human is
    moved to the caller."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    attempt: int = 0
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


class TransferConnected(Message):
    """Event: the human and the caller are talking."""

    call_id: CallId
    transfer_id: Identifier
    destination_id: Identifier
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


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
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


class TransferCancelled(Message):
    """Event and reply: the transfer was cancelled and its legs hung up."""

    call_id: CallId
    transfer_id: Identifier
    reason: ShortText = ""
    decision_id: Identifier | None = None
    """The ``HandoffDecision`` behind the transfer (``PlaceTransfer.decision_id``)."""


class TransferLegsQuery(Message):
    """Query (``sb.transfer.legs``): the transfers and call legs the bridge holds for a call."""

    call_id: CallId


class LegState(enum.StrEnum):
    """Where one dialled leg (one attempt) is."""

    OPEN = "open"
    """Dialling, ringing, or answered and in the consult room."""
    BRIDGED = "bridged"
    """Moved to the caller (or referred): it is the call now, and ends with it."""
    ENDED = "ended"


class TransferLeg(Message):
    """One dial attempt's leg."""

    transfer_id: Identifier
    attempt: int
    destination_id: Identifier
    state: LegState
    ended_by: ShortText = ""
    """Why it ended: ``hung up by the bridge``, ``call ended``, ``far end``..."""


class TransferLegs(Message):
    """Reply to ``TransferLegsQuery``. After a call, ``in_progress`` is empty and no leg
    is ``open``: no transfer leg outlives its call."""

    call_id: CallId
    in_progress: list[Identifier] = msgspec.field(default_factory=list)
    """Transfer ids still running (queued, dialling, briefing or connecting)."""
    legs: list[TransferLeg] = msgspec.field(default_factory=list)
