"""Ingest: consent commands from JetStream into the ledger, then receipts onto the bus.

Per batch: decode, append in one database transaction, publish the receipt events (ids
derived from the command id, so JetStream drops a republished one) through the runtime's
``EventPublisher``, and acknowledge each command once the stream has stored its
receipts. A crash anywhere before the ack
means redelivery, which appends nothing new and republishes the same event ids, so every
acknowledged command is in the ledger once and its receipt was published. Commands that
can never be applied go to the dead-letter table and are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError

from switchboard.consent.commands import Invalid, decode_command
from switchboard.consent.dbthread import DbThread
from switchboard.consent.ledger.backoff import Backoff
from switchboard.consent.ledger.ledger import Appended, Ledger, Outcome, Refused
from switchboard.consent.ledger.store import StoreError, StoreUnavailable
from switchboard.consent.pull import PullFeed
from switchboard.consent.receipts import events_for
from switchboard.contracts import streams
from switchboard.contracts.consent import RecordConsent
from switchboard.runtime.bus import TRACEPARENT_HEADER, EventPublisher
from switchboard.runtime.logs import exception_facts

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


async def ensure_consumer(js: JetStreamContext, ack_wait_s: float, max_ack_pending: int) -> None:
    """Create the ledger's durable pull consumer, or bring an existing one's
    ``ack_wait`` and ``max_ack_pending`` to these values (the server edits them in place)."""
    config = ConsumerConfig(
        durable_name=streams.CONSENT_LEDGER_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
        description="Consent ledger: appends consent commands.",
    )
    try:
        await js.add_consumer(streams.CONSENT_COMMANDS.name, config)
    except BadRequestError:
        log.warning("The ledger consumer exists with other settings; using it as it is.")


@dataclass(frozen=True, slots=True)
class _Valid:
    msg: Msg
    command: RecordConsent


@dataclass(frozen=True, slots=True)
class _Sent:
    """A command whose receipts were sent; acked once the stream confirms them all."""

    msg: Msg
    stored: list[asyncio.Future[None]]
    new: bool


class Ingest:
    """Runs the consume loop until stopped.

    A pipeline: receipts are sent (without waiting) in append order right after the
    commit, so one call's events keep their order; while the stream confirms them and the
    commands are acknowledged, the next batch is already being appended.
    """

    def __init__(
        self,
        js: JetStreamContext,
        feed: PullFeed,
        ledger: Ledger,
        db: DbThread,
        instance: str,
        batch: int,
        publish_timeout_s: float = 5.0,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        # The publisher retries a receipt while its command waits (``publish_timeout_s``);
        # past that the receipt is given up (its ``stored`` future cancelled) and the
        # command handed back, so the redelivery sends it again under the same id.
        self._publisher = EventPublisher(js, instance=instance)
        self._feed = feed
        self._ledger = ledger
        self._db = db
        self._batch = max(1, batch)
        self._publish_timeout_s = publish_timeout_s
        self._on_failure = on_failure
        self._backoff = Backoff()
        self._unavailable: list[Msg] = []
        """The batch the database could not take (it is down), to hand back."""
        self._task: asyncio.Task[None] | None = None
        self._tail: asyncio.Task[None] | None = None
        self.appended = 0
        self.dead_lettered = 0

    async def start(self) -> None:
        await self._feed.start()
        self._task = asyncio.create_task(self._run(), name="consent-ingest")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The loop returns only when the feed ends (``stop``). Anything else is a bug that
        would leave every call unrecorded while requests are still answered: log it (the
        type and where, not the text, which may quote a command) and report it."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        log.error(
            "Consent ingest stopped on an unexpected error; no command is recorded until "
            "the service restarts.",
            extra=exception_facts(exc),
        )
        if self._on_failure is not None:
            self._on_failure(f"consent ingest stopped ({type(exc).__name__})")

    async def stop(self) -> None:
        """Stop taking messages; finish the batches in hand; hand the rest back."""
        left = await self._feed.stop()  # ends the feed: the loop finishes and returns
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._tail is not None:
            with contextlib.suppress(Exception):
                await self._tail
        for msg in left:
            with contextlib.suppress(Exception):
                await msg.nak()
        await self._publisher.close(timeout=self._publish_timeout_s)

    async def _run(self) -> None:
        queue = self._feed.queue
        while True:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._batch and not queue.empty():
                nxt = queue.get_nowait()
                if nxt is None:
                    queue.put_nowait(None)  # seen again after this batch
                    break
                batch.append(nxt)
            appended = await self._append(batch)
            if self._unavailable:
                await self._wait_out_the_outage()
                continue
            if appended:
                sent = await self._send_receipts(appended)
                self._tail = asyncio.create_task(self._confirm(sent, self._tail))

    async def _append(self, batch: list[Msg]) -> list[tuple[_Valid, Outcome]]:
        valid: list[_Valid] = []
        now = self._ledger.clock()
        for msg in batch:
            decoded = decode_command(msg.data, msg.subject, now)
            if isinstance(decoded, Invalid):
                await self._dead_letter(msg, decoded.reason)
            else:
                valid.append(_Valid(msg, decoded))
        if not valid:
            return []
        try:
            outcomes = await self._db.run(self._ledger.append, [v.command for v in valid])
        except StoreUnavailable:
            # The store logs the outage once; here the batch waits it out.
            self._unavailable = [v.msg for v in valid]
            return []
        except StoreError as exc:
            log.error("Appending a batch failed; it will be retried.", extra=exception_facts(exc))
            await _nak_all([v.msg for v in valid])
            return []
        except Exception:
            # Not the database: something in one command that decoding let through. Retried
            # as a batch it would fail forever, with every command batched alongside.
            return await self._append_one_by_one(valid)
        self._backoff.reset()
        return list(zip(valid, outcomes, strict=True))

    async def _append_one_by_one(self, valid: list[_Valid]) -> list[tuple[_Valid, Outcome]]:
        """Each command in its own transaction; one that fails other than in the database
        can never be applied, and is dead-lettered (named by the error's type only)."""
        done: list[tuple[_Valid, Outcome]] = []
        for item in valid:
            try:
                [outcome] = await self._db.run(self._ledger.append, [item.command])
            except StoreError as exc:
                if not isinstance(exc, StoreUnavailable):
                    log.error("Appending a command failed.", extra=exception_facts(exc))
                await _nak_all([item.msg])
                continue
            except Exception as exc:
                log.error("Appending a command failed.", extra=exception_facts(exc))
                await self._dead_letter(
                    item.msg, f"The ledger could not append this command ({type(exc).__name__})."
                )
                continue
            done.append((item, outcome))
        return done

    async def _wait_out_the_outage(self) -> None:
        """The database is unreachable: hand the batch and everything queued behind it
        back to JetStream, to come again after the delay, and pause before trying again
        (0.1 s doubling to 5 s) rather than spinning through redeliveries."""
        delay = self._backoff.next()
        held = self._unavailable
        self._unavailable = []
        queue = self._feed.queue
        while not queue.empty():
            msg = queue.get_nowait()
            if msg is None:
                queue.put_nowait(None)  # the feed ended: seen on the next turn
                break
            held.append(msg)
        await _nak_all(held, delay)
        await asyncio.sleep(delay)

    async def _send_receipts(self, appended: list[tuple[_Valid, Outcome]]) -> list[_Sent]:
        sent: list[_Sent] = []
        for item, outcome in appended:
            if isinstance(outcome, Refused):
                await self._dead_letter(item.msg, outcome.reason)
                continue
            try:
                stored = await self._send(item.msg, outcome)
            except Exception:
                log.warning("Sending a receipt failed; the command will be redelivered.")
                await _nak_all([item.msg])
                continue
            sent.append(_Sent(item.msg, stored, new=not outcome.duplicate))
        return sent

    async def _send(self, msg: Msg, appended: Appended) -> list[asyncio.Future[None]]:
        # The receipt continues the trace of the decision that caused it (no span of our
        # own per message: at hundreds per second the SDK's cost shows in the latency).
        traceparent = (msg.headers or {}).get(TRACEPARENT_HEADER)
        stored: list[asyncio.Future[None]] = []
        for payload, event_id in events_for(appended):
            sent = await self._publisher.send(payload, event_id, traceparent=traceparent)
            stored.append(sent.stored)
        return stored

    async def _confirm(self, sent: list[_Sent], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        futures = [f for s in sent for f in s.stored]
        if futures:
            await asyncio.wait(futures, timeout=self._publish_timeout_s)
        for item in sent:
            if all(f.done() and not f.cancelled() for f in item.stored):
                self.appended += item.new
                with contextlib.suppress(Exception):
                    await item.msg.ack()
            else:
                for f in item.stored:
                    f.cancel()
                log.warning(
                    "The stream did not confirm a receipt; the command will be redelivered."
                )
                await _nak_all([item.msg])

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        meta = _metadata(msg)
        try:
            await self._db.run(
                self._ledger.dead_letter,
                msg.data,
                reason,
                msg.subject,
                meta[0],
                (msg.headers or {}).get("Nats-Msg-Id"),
            )
        except Exception as exc:
            if not isinstance(exc, StoreUnavailable):  # an outage is logged by the store
                log.error(
                    "Could not store a dead letter; the command will be redelivered.",
                    extra=exception_facts(exc),
                )
            await _nak_all([msg])
            return
        self.dead_lettered += 1
        log.warning(
            "Dead-lettered a consent command that can never be applied.",
            extra={"reason": reason, "stream_seq": meta[0], "deliveries": meta[1]},
        )
        await msg.ack()


def _metadata(msg: Msg) -> tuple[int | None, int | None]:
    try:
        meta = msg.metadata
    except Exception:
        return None, None
    return meta.sequence.stream, meta.num_delivered


async def _nak_all(msgs: list[Msg], delay: float = RETRY_DELAY_S) -> None:
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak(delay=delay)
