"""Delivering one endpoint's events: pull, one ordered lane per call, sign and POST with
retries, ack only after a 2xx or a stored dead letter; and replaying its dead letters.

A call with a dead letter at this endpoint is *parked*: its later events become dead
letters behind it rather than overtake it, and a replay delivers them all in order.
Held events are marked in progress well inside the ack wait, so the server does not
redeliver an event that is still being retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import msgspec
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from tenacity import AsyncRetrying
from tenacity.wait import wait_exponential_jitter

from switchboard.contracts.envelope import decode_envelope
from switchboard.contracts.webhook import DeadLetter, DeadReason, ReplayFailure
from switchboard.runtime.bus import MSG_ID_HEADER
from switchboard.runtime.service import Keep
from switchboard.webhook_relay.consumer import bind
from switchboard.webhook_relay.deadletters import DeadLetterStore, Kept, now
from switchboard.webhook_relay.delivery import Backoff, Outcome, Poster, deliver
from switchboard.webhook_relay.endpoints import Endpoint
from switchboard.webhook_relay.lanes import Lanes
from switchboard.webhook_relay.payload import Undeliverable, prepare
from switchboard.webhook_relay.settings import RelaySettings

log = logging.getLogger(__name__)

FETCH_BATCH = 256
_KEPT_AS_STORED = frozenset({DeadReason.BEHIND_DEAD_LETTER, DeadReason.UNDELIVERABLE})
"""Dead letters kept as the stream stored them (prepared for the endpoint on replay)."""
FETCH_WAIT_S = 1.0


@dataclass
class Replay:
    """A replay of one call's dead letters (up to ``until`` when given), run in its lane."""

    call_id: str
    until: str | None
    done: asyncio.Future[ReplayReport]


@dataclass
class ReplayReport:
    delivered: int = 0
    failed: list[ReplayFailure] = field(default_factory=list)
    left: int = 0


@dataclass
class Held:
    msg: Msg
    seq: int


Job = Held | Replay


class EndpointRelay:
    """Everything the relay does for one endpoint."""

    def __init__(
        self,
        js: JetStreamContext,
        endpoint: Endpoint,
        settings: RelaySettings,
        poster: Poster,
        dead: DeadLetterStore,
    ) -> None:
        self.endpoint = endpoint
        self._js = js
        self._settings = settings
        self._poster = poster
        self._dead = dead
        self._backoff = Backoff(settings.webhook_retry_initial_s, settings.webhook_retry_max_s)
        self._held: dict[int, Held] = {}
        self._room = asyncio.Event()
        self._lanes: Lanes[Job] = Lanes(self._run)
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered = 0

    async def start(self, keep: Keep | None = None) -> None:
        """Pull and deliver in the background; with ``keep`` (``Runtime.keep``) the
        service fails if either loop dies, rather than stop relaying unnoticed."""
        spawn: Keep = keep or (lambda work, name: asyncio.create_task(work, name=name))
        psub = await bind(
            self._js,
            self.endpoint,
            ack_wait_s=self._settings.webhook_ack_wait_s,
            max_pending=self._settings.webhook_max_in_flight,
        )
        name = self.endpoint.name
        self._tasks = [
            spawn(self._pull(psub), f"pull {name}"),
            spawn(self._keep_alive(), f"in progress {name}"),
        ]

    async def stop(self) -> None:
        """Stop pulling and delivering; what is not acked is delivered after a restart."""
        for task in self._tasks:
            task.cancel()
        # A loop that died has been reported (``Runtime.keep``); its error is not re-raised
        # here, where it would cut the shutdown short.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._lanes.close()

    def replay(self, call_id: str, until: str | None) -> asyncio.Future[ReplayReport]:
        """Queue a replay in the call's lane, behind any event of it already held."""
        done: asyncio.Future[ReplayReport] = asyncio.get_running_loop().create_future()
        self._lanes.put(call_id, Replay(call_id, until, done))
        return done

    async def _pull(self, psub: JetStreamContext.PullSubscription) -> None:
        try:
            await self._pull_until_cancelled(psub)
        finally:
            # A live subscription would hold the connection's drain for its whole timeout.
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _pull_until_cancelled(self, psub: JetStreamContext.PullSubscription) -> None:
        limit = self._settings.webhook_max_in_flight
        while True:
            room = limit - len(self._held)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                batch = await psub.fetch(batch=min(room, FETCH_BATCH), timeout=FETCH_WAIT_S)
            except (NatsTimeoutError, TimeoutError):
                continue  # nothing new (nats-py raises either)
            except NatsError as exc:
                # Reconnecting, or the server is busy: nothing is lost, pull again shortly.
                log.warning(
                    "Could not pull events; trying again.",
                    extra={"endpoint": self.endpoint.name, "error": repr(exc)},
                )
                await asyncio.sleep(FETCH_WAIT_S)
                continue
            for msg in batch:
                self._accept(msg)

    def _accept(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq in self._held:
            return  # a redelivery of an event still being delivered: one copy is enough
        held = self._held[seq] = Held(msg, seq)
        self._lanes.put(msg.subject.rsplit(".", 1)[-1], held)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._settings.webhook_ack_wait_s / 3)
            for held in list(self._held.values()):
                with contextlib.suppress(Exception):
                    await held.msg.in_progress()

    async def _run(self, job: Job) -> None:
        if isinstance(job, Replay):
            await self._replay(job)
            return
        try:
            await self._deliver(job)
        finally:
            self._held.pop(job.seq, None)
            self._room.set()

    async def _deliver(self, held: Held) -> None:
        msg = held.msg
        call_id = msg.subject.rsplit(".", 1)[-1]
        stored_at = msg.metadata.timestamp
        event_id, event_type = _identify(msg)
        name = self.endpoint.name
        if self._dead.has_call(name, call_id):
            behind = Outcome(False, 0)
            await self._bury(
                msg, call_id, event_id, event_type, DeadReason.BEHIND_DEAD_LETTER, behind, msg.data
            )
            return
        try:
            body = prepare(msg.data, self.endpoint.drop_personal_data)
        except Undeliverable as exc:
            # Kept as stored: a replay after an upgrade that knows the type can prepare it.
            failed = Outcome(False, 0, error=str(exc))
            await self._bury(
                msg, call_id, event_id, event_type, DeadReason.UNDELIVERABLE, failed, msg.data
            )
            return
        outcome = await deliver(
            lambda: self._poster.post(self.endpoint, event_id, body),
            stored_at=stored_at.timestamp(),
            give_up_after_s=self.endpoint.give_up_after_s,
            backoff=self._backoff,
        )
        if outcome.delivered:
            await msg.ack()
            self.delivered += 1
            return
        reason = DeadReason.REFUSED if outcome.refused else DeadReason.GAVE_UP
        await self._bury(msg, call_id, event_id, event_type, reason, outcome, body)

    async def _bury(
        self,
        msg: Msg,
        call_id: str,
        event_id: str,
        event_type: str,
        reason: DeadReason,
        outcome: Outcome,
        body: bytes,
    ) -> None:
        """Keep the event as a dead letter, then ack it (never the other way round).

        Storing is retried until it works: giving up here would let the call's next event
        overtake this one."""
        letter = DeadLetter(
            endpoint=self.endpoint.name,
            event_id=event_id,
            call_id=call_id,
            event_type=event_type,
            reason=reason,
            attempts=outcome.attempts,
            stored_at=msg.metadata.timestamp,
            dead_at=now(),
            body=_raw(body),
            last_status=outcome.status,
            last_error=outcome.error,
        )
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.1), reraise=True
        ):
            with attempt:
                await self._dead.add(letter)
        await msg.ack()
        log.warning(
            "Gave up on an event; it is a dead letter now.",
            extra={
                "endpoint": self.endpoint.name,
                "event_id": event_id,
                "call_id": call_id,
                "reason": str(reason),
                "status": outcome.status,
            },
        )

    async def _replay(self, job: Replay) -> None:
        report = ReplayReport()
        name = self.endpoint.name
        letters = self._dead.of_call(name, job.call_id)
        if job.until is not None:
            ids = [k.view.event_id for k in letters]
            letters = letters[: ids.index(job.until) + 1] if job.until in ids else []
        for kept in letters:
            outcome = await self._replay_one(kept)
            if not outcome.delivered:
                report.failed.append(
                    ReplayFailure(
                        endpoint=name,
                        event_id=kept.view.event_id,
                        call_id=job.call_id,
                        last_status=outcome.status,
                        last_error=outcome.error,
                    )
                )
                break  # the rest of the call stays behind it, in order
            await self._dead.remove(kept)
            report.delivered += 1
        report.left = len(self._dead.of_call(name, job.call_id))
        if not job.done.done():
            job.done.set_result(report)

    async def _replay_one(self, kept: Kept) -> Outcome:
        try:
            body = await self._dead.body(kept)
            if kept.view.reason in _KEPT_AS_STORED:
                body = prepare(body, self.endpoint.drop_personal_data)
        except Undeliverable as exc:
            return Outcome(False, 0, error=str(exc))
        return await deliver(
            lambda: self._poster.post(self.endpoint, kept.view.event_id, body),
            stored_at=time.time(),
            give_up_after_s=float("inf"),
            backoff=self._backoff,
            max_attempts=self._settings.webhook_replay_attempts,
        )


def _identify(msg: Msg) -> tuple[str, str]:
    """The event's id (``Nats-Msg-Id``, which is the CloudEvent id) and type."""
    try:
        event = decode_envelope(msg.data)
    except Exception:
        return (msg.headers or {}).get(
            MSG_ID_HEADER, f"seq-{msg.metadata.sequence.stream}"
        ), "unknown"
    return event.id, event.type


def _raw(body: bytes) -> msgspec.Raw:
    """The body as JSON inside the dead letter (a non-JSON body as a JSON string)."""
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        return msgspec.Raw(msgspec.json.encode(body.decode("utf-8", "replace")))
    return msgspec.Raw(body)
