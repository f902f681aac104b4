"""Dead letters on their own JetStream stream (``SB_WEBHOOK_DEAD``), with an index in memory.

One message per event and endpoint on ``sb.dead.webhook.<endpoint>.<call_id>``; the
relay is its only writer, so the index it loads at start-up and keeps up to date answers
"does this call have a dead letter here?" without a round trip on every event. A replay
deletes a message once its event is delivered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from switchboard.contracts import streams
from switchboard.contracts.subjects import WEBHOOK_DEAD_WILDCARD, webhook_dead_letter_subject
from switchboard.contracts.webhook import DeadLetter, DeadLetterView
from switchboard.runtime.bus import require_stream

STREAM = streams.WEBHOOK_DEAD_LETTERS.name
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DeadLetter)


@dataclass(frozen=True, slots=True)
class Kept:
    """A dead letter's place on the stream and what a listing shows of it."""

    seq: int
    view: DeadLetterView


def _view(letter: DeadLetter) -> DeadLetterView:
    fields = msgspec.structs.asdict(letter)
    del fields["body"]
    return DeadLetterView(**fields)


@dataclass
class DeadLetterStore:
    """The stream and its index: endpoint → call → dead letters in stream order."""

    js: JetStreamContext
    index: dict[str, OrderedDict[str, list[Kept]]] = field(default_factory=dict)

    async def open(self) -> DeadLetterStore:
        """Check the stream exists (provisioned) and index what it holds."""
        await require_stream(self.js, streams.WEBHOOK_DEAD_LETTERS)
        seq = 1
        while True:
            try:
                raw = await self.js.get_msg(
                    STREAM, seq=seq, subject=WEBHOOK_DEAD_WILDCARD, next=True
                )
            except NotFoundError:
                return self
            if raw.data:
                self._index(Kept(raw.seq or seq, _view(_decoder.decode(raw.data))))
            seq = (raw.seq or seq) + 1

    def has_call(self, endpoint: str, call_id: str) -> bool:
        calls = self.index.get(endpoint)
        return calls is not None and bool(calls.get(call_id))

    async def add(self, letter: DeadLetter) -> None:
        """Store a dead letter; returns once JetStream has it (only then is the event acked)."""
        subject = webhook_dead_letter_subject(letter.endpoint, letter.call_id)
        ack = await self.js.publish(subject, _encoder.encode(letter))
        self._index(Kept(ack.seq, _view(letter)))

    def calls(self, endpoint: str) -> list[str]:
        return list(self.index.get(endpoint, {}))

    def of_call(self, endpoint: str, call_id: str) -> list[Kept]:
        calls = self.index.get(endpoint)
        return [] if calls is None else list(calls.get(call_id, []))

    def all(self) -> list[Kept]:
        """Every dead letter, oldest first."""
        kept = [k for calls in self.index.values() for ks in calls.values() for k in ks]
        return sorted(kept, key=lambda k: k.seq)

    async def body(self, kept: Kept) -> bytes:
        raw = await self.js.get_msg(STREAM, seq=kept.seq)
        return bytes(_decoder.decode(raw.data or b"").body)

    async def remove(self, kept: Kept) -> None:
        """Delete a delivered dead letter from the stream and the index."""
        with contextlib.suppress(NotFoundError):  # already gone: the outcome is the same
            await self.js.delete_msg(STREAM, kept.seq)
        calls = self.index.get(kept.view.endpoint, OrderedDict())
        left = [k for k in calls.get(kept.view.call_id, []) if k.seq != kept.seq]
        if left:
            calls[kept.view.call_id] = left
        else:
            calls.pop(kept.view.call_id, None)

    def _index(self, kept: Kept) -> None:
        calls = self.index.setdefault(kept.view.endpoint, OrderedDict())
        calls.setdefault(kept.view.call_id, []).append(kept)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
