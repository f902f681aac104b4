"""In-test stand-ins for the consent ledger, the router and the sip-bridge.

They follow the contracts exactly (same subjects, same messages, receipts as events,
transfer status as events) but keep their state in memory, so the voice worker's and the
simulation's tests run against a real nats-server without importing the other services.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.micro import add_service
from nats.micro.service import Service

from switchboard.contracts import streams
from switchboard.contracts.base import utcnow
from switchboard.contracts.consent import (
    ConsentDecision,
    ConsentMode,
    ConsentPolicy,
    ConsentPolicyQuery,
    ConsentReceipt,
    ConsentRecorded,
    ConsentRevoked,
    RecordConsent,
)
from switchboard.contracts.escalation import (
    Destination,
    EscalationReason,
    EscalationRequest,
    HandoffDecision,
    HandoffTarget,
    RuleHit,
)
from switchboard.contracts.simulation import CarrierScripted, ScriptCarrier, SimOutcome
from switchboard.contracts.subjects import (
    CONSENT_COMMANDS_WILDCARD,
    CONSENT_POLICY,
    ESCALATION_DECIDE,
    REQUESTS,
    TRANSFER_CANCEL,
    TRANSFER_PLACE,
    TRANSFER_SIMULATE,
)
from switchboard.contracts.transfer import (
    CancelTransfer,
    FailureReason,
    PlaceTransfer,
    TransferAccepted,
    TransferAnswered,
    TransferBriefed,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferPlaceReply,
    TransferRinging,
)
from switchboard.runtime.bus import EventPublisher, ensure_stream
from switchboard.runtime.service import add_typed_endpoint

SPEC = {r.subject: r for r in REQUESTS}
RUNNING: list[FakeLedger | FakeRouter | FakeBridge] = []
"""Every fake started by a test; ``stop_all`` (called after each test) stops them."""
DESTINATIONS = [
    Destination(id="desk-1", address="+14155550100", label="front desk"),
    Destination(id="desk-2", address="sip:desk2@pbx.example.com", label="back office"),
]


async def interest_known(nc: NATS) -> None:
    """Return once the server knows this connection's subscriptions, so other clients'
    requests find them. nats-py can write flush()'s PING ahead of SUBs still in its
    pending buffer, so one PONG does not prove it; the second does."""
    await nc.flush()
    await nc.flush()


async def streams_ready(js: JetStreamContext) -> None:
    for spec in streams.ALL_STREAMS:
        await ensure_stream(js, spec)


@dataclass
class FakeLedger:
    """Answers policies and turns RecordConsent commands into receipts (hash-chained)."""

    nc: NATS
    mode: ConsentMode = ConsentMode.ASK
    notify_prefixes: tuple[str, ...] = ("+1212",)
    """Numbers that get ``notify`` whatever ``mode`` says (New York: one-party consent)."""
    policy_delay_s: float = 0.0
    receipts: bool = True
    """False: consume commands but never emit receipts (a ledger that is stuck)."""
    commands: list[RecordConsent] = field(default_factory=list)
    _service: Service | None = None
    _task: asyncio.Task[None] | None = None
    _head: str = "0" * 64

    async def start(self) -> FakeLedger:
        js = self.nc.jetstream()
        await streams_ready(js)
        self._service = await add_service(self.nc, name="consent", version="0.0.1")
        await add_typed_endpoint(self._service, SPEC[CONSENT_POLICY], self._policy)
        psub = await js.pull_subscribe(
            CONSENT_COMMANDS_WILDCARD,
            durable="fake-ledger",
            stream=streams.CONSENT_COMMANDS.name,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        self._task = asyncio.create_task(self._consume(psub, EventPublisher(js, "fake-ledger")))
        await interest_known(self.nc)
        RUNNING.append(self)
        return self

    async def _policy(self, query: ConsentPolicyQuery) -> ConsentPolicy:
        await asyncio.sleep(self.policy_delay_s)
        number = query.caller_number or ""
        mode = ConsentMode.NOTIFY if number.startswith(self.notify_prefixes) else self.mode
        return ConsentPolicy(
            call_id=query.call_id,
            jurisdiction="US-CA" if mode is ConsentMode.ASK else "US-NY",
            mode=mode,
            notice_text="This call may be recorded for quality and training.",
            notice_version="test-notice-1",
            ai_disclosure="You're talking with an AI assistant.",
        )

    async def _consume(self, psub: object, publisher: EventPublisher) -> None:
        while True:
            try:
                msgs = await psub.fetch(batch=10, timeout=0.2)  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.nc.is_closed:
                    return
                await asyncio.sleep(0.01)
                continue
            for msg in msgs:
                command = msgspec.json.decode(msg.data, type=RecordConsent)
                self.commands.append(command)
                if self.receipts:
                    await publisher.publish(self._apply(command))
                await msg.ack()

    def _apply(self, command: RecordConsent) -> ConsentRecorded | ConsentRevoked:
        self._head = hashlib.sha256((self._head + command.command_id).encode()).hexdigest()
        receipt = ConsentReceipt(
            sequence=len(self.commands), chain_hash=self._head, recorded_at=utcnow()
        )
        if command.decision is ConsentDecision.REVOKED:
            return ConsentRevoked(
                call_id=command.call_id, command_id=command.command_id, receipt=receipt
            )
        return ConsentRecorded(
            call_id=command.call_id,
            command_id=command.command_id,
            decision=command.decision,
            jurisdiction=command.jurisdiction,
            mode=command.mode,
            notice_version=command.notice_version,
            receipt=receipt,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._service is not None and not self.nc.is_closed:
            await self._service.stop()
        self._service = None


@dataclass
class FakeRouter:
    """Sends manager requests to the AI manager and everything else to the human queue."""

    nc: NATS
    delay_s: float = 0.0
    requests: list[EscalationRequest] = field(default_factory=list)
    destinations: list[Destination] = field(default_factory=lambda: list(DESTINATIONS))
    _service: Service | None = None

    async def start(self) -> FakeRouter:
        self._service = await add_service(self.nc, name="escalation", version="0.0.1")
        await add_typed_endpoint(self._service, SPEC[ESCALATION_DECIDE], self._decide)
        self._events = EventPublisher(self.nc.jetstream(), "fake-router")
        await interest_known(self.nc)
        RUNNING.append(self)
        return self

    async def _decide(self, req: EscalationRequest) -> HandoffDecision:
        self.requests.append(req)
        await asyncio.sleep(self.delay_s)
        to_manager = (
            req.reason in (EscalationReason.CALLER_REQUEST, EscalationReason.AGENT_CANNOT_HELP)
            and not req.wants_human
            and req.current_agent != "manager"
        ) or (req.reason is EscalationReason.REPEATED_FAILURE and req.current_agent != "manager")
        if to_manager:
            decision = HandoffDecision(
                call_id=req.call_id,
                request_id=req.request_id,
                target=HandoffTarget.AI_MANAGER,
                say="Let me bring in my manager.",
                rules_fired=[RuleHit(rule_id="manager-first", explanation="AI manager first.")],
            )
        else:
            decision = HandoffDecision(
                call_id=req.call_id,
                request_id=req.request_id,
                target=HandoffTarget.HUMAN_QUEUE,
                say="I'm connecting you with a colleague now. Please hold.",
                queue="front-desk",
                destinations=self.destinations,
                rules_fired=[RuleHit(rule_id="to-people", explanation="A person was asked for.")],
            )
        await self._events.publish(decision)
        return decision

    async def stop(self) -> None:
        if self._service is not None and not self.nc.is_closed:
            await self._service.stop()
        self._service = None


@dataclass
class FakeBridge:
    """Plays the transfer lifecycle from a per-call script, like the simulated carrier."""

    nc: NATS
    default: SimOutcome = SimOutcome.ANSWER
    ring_s: float = 0.02
    placed: list[PlaceTransfer] = field(default_factory=list)
    cancelled: list[CancelTransfer] = field(default_factory=list)
    scripts: dict[str, list[SimOutcome]] = field(default_factory=dict)
    _service: Service | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> FakeBridge:
        self._service = await add_service(self.nc, name="sip-bridge", version="0.0.1")
        await add_typed_endpoint(self._service, SPEC[TRANSFER_PLACE], self._place)
        await add_typed_endpoint(self._service, SPEC[TRANSFER_CANCEL], self._cancel)
        await add_typed_endpoint(self._service, SPEC[TRANSFER_SIMULATE], self._simulate)
        self._events = EventPublisher(self.nc.jetstream(), "fake-bridge")
        await interest_known(self.nc)
        RUNNING.append(self)
        return self

    async def _simulate(self, cmd: ScriptCarrier) -> CarrierScripted:
        self.scripts[cmd.call_id] = list(cmd.outcomes)
        self.ring_s = cmd.ring_s
        return CarrierScripted(call_id=cmd.call_id, outcomes=list(cmd.outcomes))

    async def _place(self, cmd: PlaceTransfer) -> TransferPlaceReply:
        self.placed.append(cmd)
        task = asyncio.create_task(self._play(cmd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return TransferAccepted(call_id=cmd.call_id, transfer_id=cmd.transfer_id)

    async def _cancel(self, cmd: CancelTransfer) -> TransferCancelled:
        self.cancelled.append(cmd)
        for task in list(self._tasks):
            task.cancel()
        event = TransferCancelled(
            call_id=cmd.call_id, transfer_id=cmd.transfer_id, reason=cmd.reason
        )
        await self._events.publish(event)
        return event

    async def _play(self, cmd: PlaceTransfer) -> None:
        script = self.scripts.setdefault(cmd.call_id, [])
        n = len(cmd.destinations)
        for attempt, dest in enumerate(cmd.destinations, start=1):
            outcome = script.pop(0) if script else self.default
            ids = {"call_id": cmd.call_id, "transfer_id": cmd.transfer_id}
            await self._events.publish(
                TransferDialing(**ids, destination_id=dest.id, attempt=attempt)
            )
            await self._events.publish(
                TransferRinging(**ids, destination_id=dest.id, attempt=attempt)
            )
            await asyncio.sleep(self.ring_s)
            if outcome is SimOutcome.ANSWER:
                await self._events.publish(
                    TransferAnswered(**ids, destination_id=dest.id, attempt=attempt)
                )
                await self._events.publish(TransferBriefed(**ids, destination_id=dest.id))
                await self._events.publish(TransferConnected(**ids, destination_id=dest.id))
                return
            await self._events.publish(
                TransferFailed(
                    **ids,
                    reason=_REASONS.get(outcome, FailureReason.CARRIER_ERROR),
                    final=False,
                    destination_id=dest.id,
                    attempt=attempt,
                    sip_status=486 if outcome is SimOutcome.BUSY else None,
                )
            )
        await self._events.publish(
            TransferFailed(
                call_id=cmd.call_id,
                transfer_id=cmd.transfer_id,
                reason=FailureReason.ALL_DESTINATIONS_FAILED,
                final=True,
                attempt=n,
            )
        )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._service is not None and not self.nc.is_closed:
            await self._service.stop()
        self._service = None


_REASONS = {
    SimOutcome.BUSY: FailureReason.BUSY,
    SimOutcome.NO_ANSWER: FailureReason.NO_ANSWER,
    SimOutcome.DECLINE: FailureReason.DECLINED,
    SimOutcome.VOICEMAIL: FailureReason.VOICEMAIL,
}


@dataclass
class Backends:
    ledger: FakeLedger
    router: FakeRouter
    bridge: FakeBridge

    async def stop(self) -> None:
        await self.bridge.stop()
        await self.router.stop()
        await self.ledger.stop()


async def start_backends(nc: NATS, mode: ConsentMode = ConsentMode.ASK) -> Backends:
    return Backends(
        ledger=await FakeLedger(nc, mode=mode).start(),
        router=await FakeRouter(nc).start(),
        bridge=await FakeBridge(nc).start(),
    )


async def stop_all() -> None:
    """Stop every fake a test started, before its NATS connection closes."""
    while RUNNING:
        await RUNNING.pop().stop()
