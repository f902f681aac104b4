"""A continuous pull on a durable JetStream consumer.

nats-py's ``fetch(batch=n)`` waits to fill the batch (or for its timeout) once a message
has arrived, which would add its timeout to every receipt at low rates. This keeps pull
requests outstanding (refilled at half the batch, with idle heartbeats and a watchdog for
requests lost in a reconnect) and hands each message over as soon as it arrives; the
consumer of ``queue`` batches whatever has accumulated while it was busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"
HEARTBEAT = "100"


class PullFeed:
    """Messages of one durable pull consumer, delivered into ``queue`` as they arrive."""

    def __init__(
        self,
        nc: NATS,
        stream: str,
        consumer: str,
        batch: int,
        expires_s: float = 30.0,
        heartbeat_s: float = 2.0,
    ) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = max(1, batch)
        self._expires_s = expires_s
        self._heartbeat_s = heartbeat_s
        self._outstanding = 0
        self._seen = 0.0
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.queue: asyncio.Queue[Msg | None] = asyncio.Queue()
        """Messages as they arrive; ``None`` marks the end of the feed (after ``stop``)."""

    async def start(self) -> None:
        self._seen = asyncio.get_running_loop().time()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        await self._refill()
        self._watchdog = asyncio.create_task(self._watch(), name="pull-watchdog")

    async def stop(self) -> list[Msg]:
        """Stop pulling and end the feed; returns the messages not yet taken from ``queue``."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        left: list[Msg] = []
        while not self.queue.empty():
            msg = self.queue.get_nowait()
            if msg is not None:
                left.append(msg)
        self.queue.put_nowait(None)
        return left

    async def _refill(self) -> None:
        if self._outstanding > self._batch // 2:
            return
        want = self._batch - self._outstanding
        request = {
            "batch": want,
            "expires": int(self._expires_s * 1e9),
            "idle_heartbeat": int(self._heartbeat_s * 1e9),
        }
        self._outstanding += want
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)

    async def _on_message(self, msg: Msg) -> None:
        self._seen = asyncio.get_running_loop().time()
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is None:
            self._outstanding = max(0, self._outstanding - 1)
            self.queue.put_nowait(msg)
        elif status != HEARTBEAT:
            # A request ended (408 expired, 409 conflict...): forget what it still owed.
            pending = (msg.headers or {}).get(PENDING_MESSAGES)
            if pending is not None and pending.isdigit():
                self._outstanding = max(0, self._outstanding - int(pending))
            else:
                self._outstanding = 0
            if status != "408":
                log.info("Pull request ended by the server.", extra={"status": status})
        await self._refill()

    async def _watch(self) -> None:
        """Re-issue pull requests when neither messages nor heartbeats arrive (lost after a
        reconnect, or the consumer was recreated)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._heartbeat_s)
            if loop.time() - self._seen > 3 * self._heartbeat_s:
                self._outstanding = 0
                self._seen = loop.time()
                try:
                    await self._refill()
                except Exception:
                    log.warning("Could not re-issue a pull request.", exc_info=True)
