"""The CloudEvents 1.0 structured JSON envelope and the registry of event types.

Every event on ``sb.evt.>`` is a CloudEvent whose ``data`` is one of the payload structs
registered here. Its identity is (``source``, ``id``), as the spec defines it:

- ``source`` names the *service* that owns the event type (``urn:switchboard:consent``),
  never a host or an instance, so a fact re-published by a restarted or another instance
  keeps its identity;
- ``id`` is deterministic wherever a fact can be published twice (a ledger receipt, a
  transfer step) and travels once (a voice event, stored in its outbox with its id).

The ``id`` doubles as the ``Nats-Msg-Id`` header so JetStream drops a republished event
inside its duplicate window; a consumer de-duplicates by (``source``, ``id``) to be safe
beyond it. ``time`` is when the fact happened (the payload's own timestamp where it has
one), not when it was published. ``type`` is versioned so a payload can change shape only
under a new type.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from switchboard.contracts import call, consent, crm, escalation, transfer
from switchboard.contracts.base import Message, new_id, utcnow
from switchboard.contracts.subjects import EVENTS_PREFIX, Owner

log = logging.getLogger(__name__)

SPEC_VERSION: Final = "1.0"
TYPE_PREFIX: Final = "io.switchboard"
EVENT_CONTENT_TYPE: Final = "application/cloudevents+json"
"""The ``Content-Type`` header of every event message: the CloudEvents NATS binding's
structured mode, in which the body is the whole CloudEvent as JSON."""
CONTENT_TYPE_HEADER: Final = "Content-Type"
SOURCE_PREFIX: Final = "urn:switchboard:"
SEQUENCE_DIGITS: Final = 10
"""The ``sequence`` extension is a string that sorts as it counts (the spec's
lexicographic order): zero-padded, room for any 32-bit count."""


def source_uri(owner: Owner) -> str:
    """The CloudEvents ``source`` of every event ``owner`` publishes (an absolute URI)."""
    return f"{SOURCE_PREFIX}{owner.value}"


def format_sequence(number: int) -> str:
    """The ``sequence`` attribute for the ``number``-th event (from 1) of a call."""
    if number < 1:
        raise ValueError("A sequence number starts at 1.")
    return str(number).zfill(SEQUENCE_DIGITS)


class CloudEvent(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """CloudEvents 1.0, structured JSON mode. ``subject`` is the call id.

    Optional attributes are omitted rather than sent as ``null``, as the spec asks.
    """

    specversion: str
    id: str
    source: str
    type: str
    subject: str
    time: dt.datetime
    data: msgspec.Raw
    datacontenttype: str | None = None
    dataschema: str | None = None
    traceparent: str | None = None
    """CloudEvents distributed-tracing extension (W3C trace context)."""
    instance: str | None = None
    """Extension: the process that published this copy (``SB_INSTANCE``), for operators.
    Not part of the identity: a copy re-published by another instance is the same event."""
    sequence: str | None = None
    """CloudEvents sequence extension, on the voice worker's events: the event's place
    among the voice worker's events of this call (``subject``), from ``0000000001`` up with
    no gap, zero-padded so it sorts as text. Other services' events have none."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """How one payload type appears on the bus."""

    payload: type[Message]
    domain: str
    name: str
    owner: Owner
    version: int = 1
    occurred: str = ""
    """The payload field (a dotted path) holding when the fact happened, which becomes the
    CloudEvents ``time``; empty: the time the event was first encoded."""

    @property
    def type(self) -> str:
        return f"{TYPE_PREFIX}.{self.domain}.{self.name}.v{self.version}"

    def subject(self, call_id: str) -> str:
        return f"{EVENTS_PREFIX}.{self.domain}.{self.name}.{call_id}"

    @property
    def source(self) -> str:
        return source_uri(self.owner)

    def occurred_at(self, payload: Message) -> dt.datetime | None:
        """The payload's own time of the fact, if this type names one."""
        if not self.occurred:
            return None
        value: Any = payload
        for name in self.occurred.split("."):
            value = getattr(value, name)
        return value if isinstance(value, dt.datetime) else None

    @property
    def wildcard(self) -> str:
        return f"{EVENTS_PREFIX}.{self.domain}.{self.name}.*"


EVENTS: tuple[EventSpec, ...] = (
    EventSpec(call.CallStarted, "call", "started", Owner.VOICE, occurred="started_at"),
    EventSpec(call.CallEnded, "call", "ended", Owner.VOICE, occurred="ended_at"),
    EventSpec(call.CallbackRequested, "call", "callback_requested", Owner.VOICE),
    EventSpec(call.AgentHandedOff, "agent", "handed_off", Owner.VOICE),
    EventSpec(call.RecordingStarted, "recording", "started", Owner.VOICE),
    EventSpec(call.RecordingStopped, "recording", "stopped", Owner.VOICE),
    EventSpec(
        consent.ConsentRecorded,
        "consent",
        "recorded",
        Owner.CONSENT,
        occurred="receipt.recorded_at",
    ),
    EventSpec(
        consent.ConsentRevoked, "consent", "revoked", Owner.CONSENT, occurred="receipt.recorded_at"
    ),
    EventSpec(
        escalation.HandoffDecision, "escalation", "decided", Owner.ESCALATION, occurred="decided_at"
    ),
    EventSpec(transfer.TransferQueued, "transfer", "queued", Owner.SIP_BRIDGE),
    EventSpec(transfer.TransferDialing, "transfer", "dialing", Owner.SIP_BRIDGE),
    EventSpec(transfer.TransferRinging, "transfer", "ringing", Owner.SIP_BRIDGE),
    EventSpec(transfer.TransferAnswered, "transfer", "answered", Owner.SIP_BRIDGE),
    EventSpec(transfer.TransferBriefed, "transfer", "briefed", Owner.SIP_BRIDGE),
    EventSpec(transfer.TransferConnected, "transfer", "connected", Owner.SIP_BRIDGE),
    EventSpec(transfer.TransferFailed, "transfer", "failed", Owner.SIP_BRIDGE),
    EventSpec(transfer.TransferCancelled, "transfer", "cancelled", Owner.SIP_BRIDGE),
    EventSpec(crm.RefundRequested, "case", "refund_requested", Owner.VOICE),
    EventSpec(crm.CreditGranted, "case", "credit_granted", Owner.VOICE),
    EventSpec(crm.OrderPlaced, "case", "order_placed", Owner.VOICE),
    EventSpec(crm.TicketOpened, "case", "ticket_opened", Owner.VOICE),
)

_BY_PAYLOAD: dict[type[Message], EventSpec] = {e.payload: e for e in EVENTS}
_BY_TYPE: dict[str, EventSpec] = {e.type: e for e in EVENTS}


class UnknownEventType(ValueError):
    """Raised when decoding a CloudEvent whose ``type`` this version does not know."""


class MalformedEvent(ValueError):
    """An event body that is not a CloudEvent, or whose ``data`` does not match its
    (known) ``type``: a producer's bug, never a newer version of the contracts."""


def spec_for(payload: type[Message]) -> EventSpec:
    """The event spec of a payload type; ``KeyError`` if it is not an event."""
    return _BY_PAYLOAD[payload]


def spec_for_type(event_type: str) -> EventSpec:
    """The event spec of a CloudEvent ``type`` string."""
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise UnknownEventType(f"Unknown event type {event_type!r}.") from None


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An encoded event ready to publish."""

    subject: str
    event_id: str
    body: bytes


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(CloudEvent)


def encode_event(
    payload: Message,
    *,
    event_id: str | None = None,
    time: dt.datetime | None = None,
    traceparent: str | None = None,
    sequence: int | None = None,
    instance: str | None = None,
    source: str | None = None,
) -> OutgoingEvent:
    """Wrap ``payload`` in a CloudEvent and encode it.

    The subject comes from its call id; the source from the type's owner, or ``source``
    (the voice worker states a routing decision it made itself when the router was down);
    the time from ``time``, else the payload's own time of the fact, else now (the caller
    encodes as the fact happens)."""
    spec = spec_for(type(payload))
    call_id: str = payload.call_id  # type: ignore[attr-defined]
    event = CloudEvent(
        specversion=SPEC_VERSION,
        datacontenttype="application/json",
        id=event_id or new_id(),
        source=source or spec.source,
        type=spec.type,
        subject=call_id,
        time=time or spec.occurred_at(payload) or utcnow(),
        data=msgspec.Raw(_encoder.encode(payload)),
        traceparent=traceparent,
        sequence=None if sequence is None else format_sequence(sequence),
        instance=instance or None,
    )
    return OutgoingEvent(spec.subject(call_id), event.id, _encoder.encode(event))


def decode_envelope(body: bytes) -> CloudEvent:
    """Decode only the envelope (``data`` stays raw)."""
    return _envelope_decoder.decode(body)


def decode_event(body: bytes) -> tuple[CloudEvent, Any]:
    """Decode an event and its payload; raises ``msgspec.DecodeError`` or ``UnknownEventType``.

    Consumers of the event stream use ``read_event``, which skips types it does not know.
    """
    event = _envelope_decoder.decode(body)
    spec = spec_for_type(event.type)
    return event, msgspec.json.decode(event.data, type=spec.payload)


_warned_types: set[str] = set()


def read_event(body: bytes) -> tuple[CloudEvent, Any] | None:
    """Read one event from the stream: the envelope and its typed payload, or ``None`` for
    an event ``type`` this version of the contracts does not know, so skip it.

    The versioning rule: a payload changes shape only under a new ``type`` (``….v2``) on
    the same subject, and producers may publish both versions for a while; a consumer
    built against older contracts reads what it knows and skips the rest (one warning per
    type). A body that is not a CloudEvent, or whose ``data`` does not match its known
    ``type``, raises ``MalformedEvent``.
    """
    try:
        event = _envelope_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"Not a CloudEvent: {_reason(exc)}") from None
    spec = _BY_TYPE.get(event.type)
    if spec is None:
        if event.type not in _warned_types:
            _warned_types.add(event.type)
            log.warning(
                "Skipping events of a type these contracts do not know.",
                extra={"event_type": event.type[:200]},
            )
        return None
    try:
        return event, msgspec.json.decode(event.data, type=spec.payload)
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"The data of a {event.type} event: {_reason(exc)}") from None


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _reason(exc: msgspec.DecodeError) -> str:
    # msgspec quotes offending values ('x'), which may be personal data; paths and types
    # (in backticks) stay.
    return _QUOTED.sub("'…'", str(exc))[:300]
