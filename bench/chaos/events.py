"""The chaos run's events as a CRM reads them: de-duplicated by (``source``, ``id``).

After a run with services killed and nats-server restarted under the calls (the voice
worker's connection drops and reconnects mid-call, the ledger dies between a commit and
its receipt), a consumer that follows the README reads ``SB_EVENTS`` and keeps one event
per CloudEvents identity. What it must then find:

- one event per fact: a consent receipt once per command, a voice event once per
  (call, sequence); never one fact under two identities, nor two facts under one;
- every call the run played has exactly one ``call.ended``;
- the voice worker's events of each call are numbered 1..n with no gap.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError

from switchboard.contracts import streams
from switchboard.contracts.envelope import CloudEvent, decode_envelope, source_uri
from switchboard.contracts.subjects import EVENTS_PREFIX, Owner

FETCH_BATCH = 1000
VOICE = source_uri(Owner.VOICE)
ENDED = "io.switchboard.call.ended.v1"
RECEIPTS = ("io.switchboard.consent.recorded.v1", "io.switchboard.consent.revoked.v1")


@dataclass
class EventAudit:
    stored: int = 0
    """Messages in ``SB_EVENTS``."""
    unique: int = 0
    """Distinct (``source``, ``id``) pairs: what the consumer keeps."""
    copies_dropped: int = 0
    """Stored copies of an event the consumer had already (``stored - unique``)."""
    identity_conflicts: list[str] = field(default_factory=list)
    """(source, id) pairs whose copies differ in what they say (two facts, one identity)."""
    facts_twice: list[str] = field(default_factory=list)
    """Facts kept twice under different identities."""
    calls_without_end: list[str] = field(default_factory=list)
    """Calls played with no ``call.ended``, or more than one."""
    calls_with_gaps: list[str] = field(default_factory=list)
    """Calls whose voice events are not numbered 1..n."""
    voice_events: int = 0


async def stored_events(nc: NATS, subjects: str = f"{EVENTS_PREFIX}.>") -> list[CloudEvent]:
    """Every event in ``SB_EVENTS`` on ``subjects``, in stream order (copies included)."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(subjects, stream=streams.EVENTS.name)
    out: list[CloudEvent] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=2.0)
            except (NatsTimeoutError, TimeoutError):  # nats-py raises either: nothing left
                break
            for msg in msgs:
                await msg.ack()
                out.append(decode_envelope(msg.data))
    finally:
        await sub.unsubscribe()
    return out


def fact_key(event: CloudEvent) -> str | None:
    """What makes an event one fact, independent of its identity, where there is a rule."""
    if event.source == VOICE:
        return f"voice:{event.subject}:{event.sequence}"
    if event.type in RECEIPTS:
        data = msgspec.json.decode(event.data)
        return f"{event.type}:{data.get('command_id')}"
    return None


def _content(event: CloudEvent) -> str:
    # What a copy says: its envelope minus who published it, and its data.
    said = (event.type, event.subject, event.time.isoformat(), event.sequence, bytes(event.data))
    return hashlib.sha256(repr(said).encode()).hexdigest()


def audit_events(events: list[CloudEvent], call_ids: Iterable[str]) -> EventAudit:
    audit = EventAudit(stored=len(events))
    kept: dict[tuple[str, str], CloudEvent] = {}
    for event in events:
        key = (event.source, event.id)
        first = kept.setdefault(key, event)
        if first is not event and _content(first) != _content(event):
            audit.identity_conflicts.append(f"{event.source} {event.id}")
    audit.unique = len(kept)
    audit.copies_dropped = audit.stored - audit.unique
    facts = Counter(k for k in (fact_key(e) for e in kept.values()) if k is not None)
    audit.facts_twice = sorted(k for k, n in facts.items() if n > 1)
    ended = Counter(e.subject for e in kept.values() if e.type == ENDED)
    numbers: dict[str, list[int]] = defaultdict(list)
    for event in kept.values():
        if event.source == VOICE:
            audit.voice_events += 1
            numbers[event.subject].append(int(event.sequence or 0))
    for call_id in call_ids:
        if ended[call_id] != 1:
            audit.calls_without_end.append(call_id)
        got = sorted(numbers[call_id])
        if got != list(range(1, len(got) + 1)) or not got:
            audit.calls_with_gaps.append(call_id)
    return audit
