"""Publishing the voice worker's own call events (CloudEvents on JetStream).

Waiting for JetStream's ack inside a turn put a store round trip on the caller's path
every time something happened (``bench/voice_bench.py`` measured 0.7-0.9 ms per turn, about
1.5 ms per event while the session was busy), so an event is *written* when it happens
and *acknowledged* afterwards by the runtime's ``EventPublisher`` (one per bus):

- ``CallEvents.publish`` numbers the event (the CloudEvents ``sequence`` extension: 1, 2,
  3… for this call's events from this worker, with no gap) and hands it to the outbox
  (``clients/outbox.py``), which keeps it until it is stored and passes it to
  ``EventPublisher``, which appends it to the connection's buffer (same envelope,
  ``Nats-Msg-Id`` = event id, trace context).
  Whatever the worker sends next on that connection (the next event, a transfer request)
  reaches the server after it, so a call's events keep their order and an event is on the
  stream before anyone can act on what follows from it.
- The publisher confirms the ack in the background and republishes an event whose ack
  failed with the same id (JetStream drops duplicates) until it is stored.
- ``CallEvents.settle`` waits until every event of the call is stored; ``Call.finish``
  calls it after ``CallEnded``, so a call is over only once its events are on the stream.
  ``Bus.close`` waits for whatever is left.

Losing the bus never cuts a caller off: nothing here raises into the conversation, and
no event is dropped (the outbox retries, and with ``SB_EVENT_OUTBOX_DIR`` keeps events on
disk for the next process if this one dies).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from switchboard.contracts.base import Message
from switchboard.contracts.envelope import spec_for
from switchboard.voice.clients.outbox import EventOutbox

log = logging.getLogger(__name__)

SETTLE_TIMEOUT_S = 10.0


class EventSink(Protocol):
    """Where events go; tests may collect them in memory."""

    async def publish(self, payload: Message) -> str | None: ...


class CallEventSink(EventSink, Protocol):
    """A call's events: published as they happen, all stored before the call is over."""

    async def settle(self) -> None: ...


class CallEvents:
    """Publishes one call's events, numbered in order; never raises."""

    def __init__(self, outbox: EventOutbox) -> None:
        self._outbox = outbox
        self._unstored: set[asyncio.Future[None]] = set()
        self._sequence = 0

    @property
    def sequence(self) -> int:
        """The number of the call's last event (0 before the first)."""
        return self._sequence

    async def publish(self, payload: Message) -> str | None:
        # Numbered before anything can fail, and never reused: the outbox keeps every
        # numbered event, so the call's numbers have no gap.
        self._sequence += 1
        try:
            sent = await self._outbox.publish(payload, sequence=self._sequence)
        except Exception as exc:
            log.warning(
                "Could not publish a call event; the call goes on.",
                extra={"event_type": spec_for(type(payload)).type, "error": type(exc).__name__},
            )
            return None
        if not sent.stored.done():
            self._unstored.add(sent.stored)
            sent.stored.add_done_callback(self._unstored.discard)
        return sent.event_id

    async def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until every event of this call is stored (or ``timeout`` passes)."""
        if self._unstored:
            await asyncio.wait(set(self._unstored), timeout=timeout)
        if self._unstored:
            log.error(
                "Call events not stored by the end of the call; still retrying.",
                extra={"count": len(self._unstored)},
            )
