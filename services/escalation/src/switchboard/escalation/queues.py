"""Live state of the human queues (callers waiting, agents available) and where it comes from.

The rules never talk to a store: they receive a ``QueueSnapshot``. A ``QueueStateSource``
produces snapshots — ``StaticQueueState`` from the rules file (no workforce feed), or
``KvQueueState`` from a key-value bucket that a workforce system writes, one key per queue
holding ``{"waiting": 3, "agents_available": 2}``. The KV source caches a snapshot for a
short time so a burst of decisions costs one read per queue, not one per decision.
This module knows no NATS: ``bucket.py`` adapts a NATS KV bucket to ``KeyReader``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Protocol

import msgspec

log = logging.getLogger(__name__)

KeyReader = Callable[[str], Awaitable[bytes | None]]
"""Reads one key of the bucket: its value, or ``None`` when the key is absent or deleted."""


class QueueFeedError(Exception):
    """The queue-state store cannot be read right now."""


class QueueState(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=False):
    """What the workforce system reports for one queue (also the KV value format)."""

    waiting: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Callers currently waiting in the queue."""
    agents_available: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Agents signed in and taking calls from this queue (busy or idle)."""


QueueSnapshot = Mapping[str, QueueState]
"""Queue name to its state at one moment; a queue missing from it counts as unstaffed."""


class QueueStateSource(Protocol):
    """Anything that can say how the queues look right now."""

    async def snapshot(self) -> QueueSnapshot: ...


class StaticQueueState:
    """Queue state as written in the rules file; for sites without a workforce feed."""

    def __init__(self, states: Callable[[], Mapping[str, QueueState]]) -> None:
        # A callable, so a rules reload changes the static state too.
        self._states = states

    async def snapshot(self) -> QueueSnapshot:
        return self._states()


_decoder = msgspec.json.Decoder(QueueState)


class KvQueueState:
    """Queue state read from a key-value bucket, cached for ``ttl`` seconds.

    A queue with no key falls back to its static state from the rules file. When the
    bucket cannot be read the last snapshot is kept: a stale count is a better guess than
    none, and the router must keep answering while the feed is down.
    """

    def __init__(
        self,
        read: KeyReader,
        fallback: Callable[[], Mapping[str, QueueState]],
        ttl: float = 1.0,
        timeout: float = 0.5,
    ) -> None:
        self._read_key = read
        self._fallback = fallback
        self._ttl = ttl
        self._timeout = timeout
        self._cached: QueueSnapshot | None = None
        self._cached_at = 0.0
        self._refreshing: asyncio.Task[QueueSnapshot] | None = None

    async def snapshot(self) -> QueueSnapshot:
        if self._cached is not None and time.monotonic() - self._cached_at < self._ttl:
            return self._cached
        # One refresh at a time: concurrent decisions wait for the same read.
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)
        return await asyncio.shield(self._refreshing)

    def _refreshed(self, _task: asyncio.Task[QueueSnapshot]) -> None:
        self._refreshing = None

    async def _refresh(self) -> QueueSnapshot:
        fallback = self._fallback()
        names = sorted(fallback)
        try:
            async with asyncio.timeout(self._timeout):
                values = await asyncio.gather(*(self._read(name) for name in names))
        except (QueueFeedError, TimeoutError):
            log.warning("Queue state bucket unreadable; keeping the last known state.")
            # Retry on the next decision, not after a full ttl.
            return self._cached if self._cached is not None else fallback
        snapshot = {
            n: v if v is not None else fallback[n] for n, v in zip(names, values, strict=True)
        }
        self._cached, self._cached_at = snapshot, time.monotonic()
        return snapshot

    async def _read(self, queue: str) -> QueueState | None:
        value = await self._read_key(queue)
        if not value:
            return None
        try:
            return _decoder.decode(value)
        except msgspec.DecodeError as exc:
            log.warning(
                "Ignoring a malformed queue state entry.", extra={"queue": queue, "error": str(exc)}
            )
            return None
