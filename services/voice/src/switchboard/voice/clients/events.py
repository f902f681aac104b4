"""Publishing the voice worker's own call events (CloudEvents on JetStream).

Waiting for JetStream's ack inside a turn put a store round trip on the caller's path
every time something happened (``bench/voice_bench.py`` measured 0.7-0.9 ms per turn, about
1.5 ms per event while the session was busy), so an event is *written* when it happens
and *acknowledged* afterwards, as the router does with its decisions:

- ``CallEvents.publish`` encodes the CloudEvent with ``EventPublisher.encode`` (same
  envelope, ``Nats-Msg-Id`` = event id, trace context) and appends it to the connection's
  buffer without yielding. Whatever the worker sends next on that connection (the next
  event, a transfer request) reaches the server after it, so a call's events keep their
  order and an event is on the stream before anyone can act on what follows from it.
- JetStream's ack comes back to the process's ack inbox (:class:`EventAcks`, one per bus).
  A "no responders" status, an error or no ack within the timeout hands the event to a
  retry loop that publishes it through ``EventPublisher`` with the same id (JetStream
  drops duplicates) until it is stored.
- ``CallEvents.settle`` waits until every event of the call is stored; ``Call.finish``
  calls it after ``CallEnded``, so a call is over only once its events are on the stream.
  ``Bus.close`` waits for whatever is left.

Losing the bus never cuts a caller off: nothing here raises into the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from switchboard.contracts.base import Message
from switchboard.contracts.envelope import spec_for
from switchboard.runtime.bus import EventPublisher

log = logging.getLogger(__name__)

_STATUS = "Status"
_NO_RESPONDERS = "503"
SETTLE_TIMEOUT_S = 10.0


class EventSink(Protocol):
    """Where events go; tests may collect them in memory."""

    async def publish(self, payload: Message) -> str | None: ...


class CallEventSink(EventSink, Protocol):
    """A call's events: published as they happen, all stored before the call is over."""

    async def settle(self) -> None: ...


@dataclass
class _Pending:
    payload: Message
    event_id: str
    stored: asyncio.Future[None]
    sent_at: float = field(default_factory=time.monotonic)


class EventAcks:
    """Sends events ahead of their acks and makes sure each one is stored."""

    def __init__(
        self,
        nc: NATS,
        publisher: EventPublisher,
        ack_timeout: float = 2.0,
        retry_delay: float = 0.25,
        max_retry_delay: float = 5.0,
    ) -> None:
        self._nc = nc
        self._publisher = publisher
        self._ack_timeout = ack_timeout
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._inbox = nc.new_inbox()
        self._tokens = itertools.count()
        self._awaiting: dict[str, _Pending] = {}
        """Ack token → event, oldest first."""
        self._retry: dict[str, _Pending] = {}
        """Event id → event."""
        self._acks: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def unstored(self) -> int:
        """Events JetStream has not acknowledged yet."""
        return len(self._awaiting) + len(self._retry)

    async def start(self) -> EventAcks:
        self._acks = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        self._tasks = [
            asyncio.create_task(self._expire_loop()),
            asyncio.create_task(self._retry_loop()),
        ]
        return self

    async def send(self, payload: Message) -> tuple[str, asyncio.Future[None]]:
        """Append the event to the connection (never suspends unless the buffer is full);
        returns its id and a future that completes once it is stored."""
        out, headers = self._publisher.encode(payload)
        pending = _Pending(payload, out.event_id, asyncio.get_running_loop().create_future())
        token = str(next(self._tokens))
        self._awaiting[token] = pending
        try:
            await self._nc.publish(
                out.subject, out.body, reply=f"{self._inbox}.{token}", headers=headers
            )
        except NatsError:
            self._fail(token, "publish failed")
        return out.event_id, pending.stored

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        if (msg.headers or {}).get(_STATUS) == _NO_RESPONDERS:
            self._fail(token, "no stream")
        elif b'"error"' in msg.data:
            self._fail(token, "stream error")
        elif (pending := self._awaiting.pop(token, None)) is not None:
            _resolve(pending)

    def _fail(self, token: str, why: str) -> None:
        pending = self._awaiting.pop(token, None)
        if pending is None:
            return
        log.warning(
            "Call event not stored yet; retrying in the background.",
            extra={
                "event_type": spec_for(type(pending.payload)).type,
                "event_id": pending.event_id,
                "reason": why,
            },
        )
        self._retry[pending.event_id] = pending

    async def _expire_loop(self) -> None:
        # Dicts keep insertion order, so the oldest unacknowledged events come first.
        while True:
            await asyncio.sleep(min(1.0, self._ack_timeout / 2))
            cutoff = time.monotonic() - self._ack_timeout
            for token, pending in list(itertools.islice(self._awaiting.items(), 10_000)):
                if pending.sent_at > cutoff:
                    break
                self._fail(token, "no ack in time")

    async def _retry_loop(self) -> None:
        delay = self._retry_delay
        while True:
            await asyncio.sleep(delay)
            for event_id, pending in list(self._retry.items()):
                try:
                    await self._publisher.publish(pending.payload, event_id=event_id)
                except NatsError:  # still not stored: keep it and back off
                    delay = min(delay * 2, self._max_retry_delay)
                    break
                del self._retry[event_id]
                _resolve(pending)
                delay = self._retry_delay

    async def close(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait up to ``timeout`` for every event to be stored, then stop; report leftovers."""
        waiting = [p.stored for p in (*self._awaiting.values(), *self._retry.values())]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._acks is not None:
            with contextlib.suppress(NatsError):
                await self._acks.unsubscribe()
        if self.unstored:
            ids = [p.event_id for p in (*self._awaiting.values(), *self._retry.values())]
            log.error(
                "Call events could not be stored before shutdown.",
                extra={"count": len(ids), "event_ids": sorted(ids)},
            )


def _resolve(pending: _Pending) -> None:
    if not pending.stored.done():
        pending.stored.set_result(None)


class CallEvents:
    """Publishes one call's call, agent, callback and recording events; never raises."""

    def __init__(self, acks: EventAcks) -> None:
        self._acks = acks
        self._unstored: set[asyncio.Future[None]] = set()

    async def publish(self, payload: Message) -> str | None:
        try:
            event_id, stored = await self._acks.send(payload)
        except Exception as exc:
            log.warning(
                "Could not publish a call event; the call goes on.",
                extra={"event_type": spec_for(type(payload)).type, "error": type(exc).__name__},
            )
            return None
        if not stored.done():
            self._unstored.add(stored)
            stored.add_done_callback(self._unstored.discard)
        return event_id

    async def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until every event of this call is stored (or ``timeout`` passes)."""
        if self._unstored:
            await asyncio.wait(set(self._unstored), timeout=timeout)
        if self._unstored:
            log.error(
                "Call events not stored by the end of the call; still retrying.",
                extra={"count": len(self._unstored)},
            )
