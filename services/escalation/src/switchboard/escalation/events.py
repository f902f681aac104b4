"""Publishing each decision as the ``escalation.decided`` event without delaying the reply.

Waiting for JetStream's ack before replying would put a store round trip on every
decision, so the event is *written* before the reply and *acknowledged* afterwards:

- ``send`` encodes the CloudEvent with ``EventPublisher.encode`` (same envelope,
  ``Nats-Msg-Id`` = decision id, trace context) and appends it to the connection's
  buffer without yielding. The reply is appended after it, so the server
  stores the event before the caller can act on the decision (e.g. ask for a transfer),
  and many requests share one socket write.
- JetStream's ack comes back to a per-process inbox; an error, a "no responders" status
  or no ack within the timeout hands the decision to a retry loop that publishes it
  through ``EventPublisher`` with the same id (JetStream drops duplicates) until stored.
- Shutdown waits for outstanding acks and retries. Only a hard kill inside the ack window
  (about a millisecond) can lose an event; the caller already has its decision then.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from switchboard.contracts.escalation import HandoffDecision
from switchboard.runtime.bus import EventPublisher

log = logging.getLogger(__name__)

_STATUS = "Status"
_NO_RESPONDERS = "503"


class DecisionEvents:
    """Sends decision events ahead of replies and makes sure each one is stored."""

    def __init__(
        self,
        nc: NATS,
        publisher: EventPublisher,
        ack_timeout: float = 5.0,
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
        self._awaiting: dict[str, tuple[HandoffDecision, float]] = {}
        """Ack token → (decision, monotonic send time), oldest first."""
        self._retry: dict[str, HandoffDecision] = {}
        self._acks: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._settled = asyncio.Event()
        """Set whenever no event is waiting for its ack or a retry."""
        self._settled.set()

    @property
    def unstored(self) -> int:
        """Decisions whose event JetStream has not acknowledged yet."""
        return len(self._awaiting) + len(self._retry)

    async def start(self) -> None:
        self._acks = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        self._tasks = [
            asyncio.create_task(self._expire_loop()),
            asyncio.create_task(self._retry_loop()),
        ]

    async def send(self, decision: HandoffDecision) -> None:
        """Append the event to the connection; never suspends unless the buffer is full."""
        out, headers = self._publisher.encode(decision, decision.decision_id)
        token = str(next(self._tokens))
        self._awaiting[token] = (decision, time.monotonic())
        self._settled.clear()
        try:
            await self._nc.publish(
                out.subject, out.body, reply=f"{self._inbox}.{token}", headers=headers
            )
        except NatsError:
            self._fail(token, "publish failed")

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        if (msg.headers or {}).get(_STATUS) == _NO_RESPONDERS:
            self._fail(token, "no stream")
        elif b'"error"' in msg.data:
            self._fail(token, "stream error")
        elif self._awaiting.pop(token, None) is not None and not self.unstored:
            self._settled.set()

    def _fail(self, token: str, why: str) -> None:
        entry = self._awaiting.pop(token, None)
        if entry is None:
            return
        decision = entry[0]
        log.warning(
            "Decision event not stored yet; retrying in the background.",
            extra={"decision_id": decision.decision_id, "reason": why},
        )
        self._retry[decision.decision_id] = decision

    async def _expire_loop(self) -> None:
        # Dicts keep insertion order, so the oldest unacknowledged events come first.
        while True:
            await asyncio.sleep(min(1.0, self._ack_timeout / 2))
            cutoff = time.monotonic() - self._ack_timeout
            for token, (_, sent) in list(itertools.islice(self._awaiting.items(), 10_000)):
                if sent > cutoff:
                    break
                self._fail(token, "no ack in time")

    async def _retry_loop(self) -> None:
        delay = self._retry_delay
        while True:
            await asyncio.sleep(delay)
            for event_id, decision in list(self._retry.items()):
                try:
                    await self._publisher.publish(decision, event_id=event_id)
                except NatsError:
                    delay = min(delay * 2, self._max_retry_delay)
                    break
                del self._retry[event_id]
                delay = self._retry_delay
            if not self.unstored:
                self._settled.set()

    async def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` for every event to be stored, then stop; report leftovers."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._acks is not None:
            await self._acks.unsubscribe()
        if self.unstored:
            ids = [d.decision_id for d, _ in self._awaiting.values()] + list(self._retry)
            log.error(
                "Decision events could not be stored before shutdown.",
                extra={"count": len(ids), "decision_ids": sorted(ids)},
            )
