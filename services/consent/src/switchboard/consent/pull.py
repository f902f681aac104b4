"""A continuous pull on a durable JetStream consumer.

nats-py's ``fetch(batch=n)`` waits to fill the batch (or for its timeout) once a message
has arrived, which would add its timeout to every receipt at low rates. This keeps pull
requests outstanding (refilled at half the batch, with idle heartbeats and a watchdog for
requests lost in a reconnect) and hands each message over as soon as it arrives; the
consumer of ``queue`` batches whatever has accumulated while it was busy. Given the
consumer's ``ack_wait``, it also keeps the messages it handed over alive until they are
acknowledged.
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
        ack_wait_s: float | None = None,
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
        self._ack_wait_s = ack_wait_s
        self._held: list[tuple[float, Msg]] = []
        """Delivered messages not yet acknowledged, with when they were last kept alive."""
        self._keeper: asyncio.Task[None] | None = None
        self.kept_alive = 0
        """How many progress reports were sent."""
        self.queue: asyncio.Queue[Msg | None] = asyncio.Queue()
        """Messages as they arrive; ``None`` marks the end of the feed (after ``stop``)."""

    async def start(self) -> None:
        self._seen = asyncio.get_running_loop().time()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        await self._refill()
        self._watchdog = asyncio.create_task(self._watch(), name="pull-watchdog")
        if self._ack_wait_s is not None:
            self._keeper = asyncio.create_task(self._keep_alive(self._ack_wait_s))

    async def stop(self) -> list[Msg]:
        """Stop pulling and end the feed; returns the messages not yet taken from ``queue``."""
        for task in (self._watchdog, self._keeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
            if self._keeper is not None:
                self._held.append((self._seen, msg))
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

    async def _keep_alive(self, ack_wait_s: float) -> None:
        """Tell JetStream that messages held for half of ``ack_wait`` are still being
        worked on (``+WPI``), so ``ack_wait`` can be short enough to hand a dead process's
        messages to another one promptly without a busy, live one losing its own."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(ack_wait_s / 4)
            now = loop.time()
            kept: list[tuple[float, Msg]] = []
            for since, msg in self._held:
                if msg.is_acked:
                    continue
                if now - since >= ack_wait_s / 2:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()
                        self.kept_alive += 1
                    since = now
                kept.append((since, msg))
            self._held = kept

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
