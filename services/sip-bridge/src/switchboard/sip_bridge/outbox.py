"""An ordered, retrying outbox for one transfer's events.

Transitions happen inside steps that may be cancelled (ring timeouts, cancel requests,
shutdown). Publishing in those steps could be interrupted half-way, so transitions only
``put`` their events here and one worker per transfer publishes them in order, retrying
with the same event id (JetStream drops the duplicate if an earlier try got through).
A dead bus never blocks the call itself: after the retries the event is logged as lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from switchboard.contracts.base import Message
from switchboard.sip_bridge.machine import Emitted

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where events go; ``runtime.bus.EventPublisher`` in the service."""

    async def publish(self, payload: Message, event_id: str | None = None) -> object: ...


class Outbox:
    """Publishes one transfer's events in order, off the transfer's own task."""

    def __init__(
        self, sink: EventSink, *, attempts: int = 5, backoff_s: float = 0.2, name: str = ""
    ) -> None:
        self._sink = sink
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._queue: asyncio.Queue[Emitted | None] = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name=f"outbox {name}".strip())
        self.published: list[str] = []
        """Ids of the events that reached the sink, in order."""

    def put(self, emitted: Emitted) -> None:
        self._queue.put_nowait(emitted)

    async def close(self) -> None:
        """Publish what is queued, then stop."""
        self._queue.put_nowait(None)
        await self._worker

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            await self._deliver(item)

    async def _deliver(self, item: Emitted) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                await self._sink.publish(item.event, item.event_id)
            except Exception as exc:
                log.warning(
                    "Publishing a transfer event failed; retrying.",
                    extra={"event_id": item.event_id, "try": attempt, "error": type(exc).__name__},
                )
                await asyncio.sleep(self._backoff_s * attempt)
            else:
                self.published.append(item.event_id)
                return
        log.error("A transfer event could not be published.", extra={"event_id": item.event_id})
