"""The webhook relay's dead letters: what it gave up delivering, and how an operator
lists and replays them (``sb.webhook.deadletter.*``, answered by ``webhook-relay``).

A dead letter is kept on the ``SB_WEBHOOK_DEAD`` stream, one message per event and
endpoint, until a replay delivers it. Its body is the event exactly as the endpoint would
have received it (personal data already dropped when the endpoint asks for that).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

from switchboard.contracts.base import CallId, Identifier, Message, ShortText

EndpointName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_-]{1,48}\Z",
        description="A configured webhook endpoint; one subject token.",
    ),
]


class DeadReason(enum.StrEnum):
    """Why the relay stopped trying."""

    GAVE_UP = "gave_up"
    """Retried until the event was older than the endpoint's give-up age."""
    REFUSED = "refused"
    """The receiver answered with a 4xx that retrying will not change."""
    BEHIND_DEAD_LETTER = "behind_dead_letter"
    """An earlier event of the same call is a dead letter: delivering this one first
    would reorder the call, so it waits with it."""
    UNDELIVERABLE = "undeliverable"
    """The relay could not prepare the request (an event it cannot read)."""


class DeadLetter(Message):
    """One event the relay could not deliver to one endpoint."""

    endpoint: EndpointName
    event_id: Identifier
    """Also the ``webhook-id`` of every attempt and of the replay."""
    call_id: CallId
    event_type: ShortText
    reason: DeadReason
    attempts: int
    stored_at: dt.datetime
    """When the event was stored on ``SB_EVENTS`` (its age counts from here)."""
    dead_at: dt.datetime
    body: msgspec.Raw
    """The CloudEvent as the endpoint would receive it (may hold personal data, as the
    events on ``SB_EVENTS`` do)."""
    last_status: int | None = None
    """The receiver's last HTTP status; none after a timeout or connection error."""
    last_error: ShortText = ""


class DeadLetterView(Message):
    """A dead letter without its body, for listings."""

    endpoint: EndpointName
    event_id: Identifier
    call_id: CallId
    event_type: ShortText
    reason: DeadReason
    attempts: int
    stored_at: dt.datetime
    dead_at: dt.datetime
    last_status: int | None = None
    last_error: ShortText = ""


class ListDeadLetters(Message):
    """Request (``sb.webhook.deadletter.list``): dead letters, oldest first."""

    endpoint: EndpointName | None = None
    """One endpoint, or every endpoint."""
    call_id: CallId | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class DeadLetters(Message):
    """Reply: dead letters, oldest first, and how many there are in all."""

    dead_letters: list[DeadLetterView]
    total: int


class ReplayDeadLetters(Message):
    """Request (``sb.webhook.deadletter.replay``): deliver dead letters again, each call's
    in their order; a delivered one is removed, a failed one stays (with the rest of its
    call behind it)."""

    endpoint: EndpointName | None = None
    call_id: CallId | None = None
    event_id: Identifier | None = None
    """Only this event (and, to keep the order, every earlier dead letter of its call)."""


class ReplayFailure(Message):
    """A dead letter a replay could not deliver."""

    endpoint: EndpointName
    event_id: Identifier
    call_id: CallId
    last_status: int | None = None
    last_error: ShortText = ""


class DeadLettersReplayed(Message):
    """Reply: how a replay went."""

    delivered: int
    failed: list[ReplayFailure] = msgspec.field(default_factory=list)
    left: int = 0
    """Dead letters still kept for the replayed selection (failed ones and those behind them)."""
