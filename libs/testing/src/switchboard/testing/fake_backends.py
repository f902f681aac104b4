"""In-test stand-ins for the consent ledger, the router and the sip-bridge.

They follow the contracts exactly (same subjects, same messages, receipts as events,
transfer status as events, the briefed human's decision as a request) but keep their
state in memory, so the voice worker's and the simulation's tests run against a real
nats-server without importing the other services.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
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
    CallerErased,
    ConsentDecision,
    ConsentMode,
    ConsentPolicy,
    ConsentPolicyQuery,
    ConsentReceipt,
    ConsentRecorded,
    ConsentRevoked,
    EraseCaller,
    RecordConsent,
)
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.escalation import (
    Destination,
    EscalationReason,
    EscalationRequest,
    HandoffDecision,
    HandoffTarget,
    RuleHit,
)
from switchboard.contracts.sealed import CallerKey, GetCallerKey, OpenSealed, SealedOpened
from switchboard.contracts.simulation import CarrierScripted, ScriptCarrier, SimOutcome
from switchboard.contracts.subjects import (
    CONSENT_CALLER_KEY,
    CONSENT_COMMANDS_WILDCARD,
    CONSENT_ERASE,
    CONSENT_POLICY,
    CONSENT_UNSEAL,
    ESCALATION_DECIDE,
    REQUESTS,
    TRANSFER_CANCEL,
    TRANSFER_DECIDE,
    TRANSFER_LEGS,
    TRANSFER_PLACE,
    TRANSFER_SIMULATE,
)
from switchboard.contracts.transfer import (
    CancelTransfer,
    FailureReason,
    HumanDecision,
    HumanDecisionNoted,
    LegState,
    PlaceTransfer,
    ReportHumanDecision,
    TransferAccepted,
    TransferAnswered,
    TransferBriefed,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferLeg,
    TransferLegs,
    TransferLegsQuery,
    TransferMode,
    TransferPlaceReply,
    TransferQueued,
    TransferRinging,
)
from switchboard.runtime.bus import EventPublisher, ensure_stream
from switchboard.runtime.sealing import SealedFieldsError, open_sealed
from switchboard.runtime.service import RequestError, add_typed_endpoint

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
    keys: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Callers' event keys in memory: number (or ``call:<id>``) -> (reference, key)."""
    _service: Service | None = None
    _task: asyncio.Task[None] | None = None
    _head: str = "0" * 64

    async def start(self) -> FakeLedger:
        js = self.nc.jetstream()
        await streams_ready(js)
        self._service = await add_service(self.nc, name="consent", version="0.0.1")
        await add_typed_endpoint(self._service, SPEC[CONSENT_POLICY], self._policy)
        await add_typed_endpoint(self._service, SPEC[CONSENT_CALLER_KEY], self._caller_key)
        await add_typed_endpoint(self._service, SPEC[CONSENT_UNSEAL], self._unseal)
        await add_typed_endpoint(self._service, SPEC[CONSENT_ERASE], self._erase)
        psub = await js.pull_subscribe(
            CONSENT_COMMANDS_WILDCARD,
            durable="fake-ledger",
            stream=streams.CONSENT_COMMANDS.name,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        self._task = asyncio.create_task(self._consume(psub, EventPublisher(js)))
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

    async def _caller_key(self, query: GetCallerKey) -> CallerKey:
        who = query.caller_number or f"call:{query.call_id}"
        if who not in self.keys:
            self.keys[who] = (str(uuid.uuid4()), os.urandom(32))
        ref, key = self.keys[who]
        return CallerKey(caller_ref=ref, key=key)

    async def _unseal(self, query: OpenSealed) -> SealedOpened:
        ref = query.sealed.caller_ref
        key = next((k for r, k in self.keys.values() if r == ref), None)
        if key is None:
            raise RequestError(ErrorCode.ERASED, "The caller's key no longer exists.")
        try:
            fields = open_sealed(query.sealed, key)
        except SealedFieldsError:
            raise RequestError(ErrorCode.BAD_REQUEST, "Did not authenticate.", "$.sealed") from None
        return SealedOpened(caller_ref=ref, fields=fields)

    async def _erase(self, query: EraseCaller) -> CallerErased:
        erased = self.keys.pop(query.caller_number, None)
        return CallerErased(records_affected=0 if erased is None else 1)

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
        self._events = EventPublisher(self.nc.jetstream())
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
                say="I'll find a colleague for you now. Please stay on the line.",
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
    """Plays the transfer lifecycle from a per-call script, like the simulated carrier; a
    warm transfer's answered attempt waits for the briefed human's decision."""

    nc: NATS
    default: SimOutcome = SimOutcome.ANSWER
    ring_s: float = 0.02
    briefing_timeout_s: float = 10.0
    hangup_gate: asyncio.Event | None = None
    """Set: a cancel hangs the legs up only once the test sets it (a carrier's BYE is not
    instant): the caller's side must wait for it, not assume it."""
    queue_position: int | None = None
    """Set: every transfer first waits in line at this position (``transfer.queued``)."""
    placed: list[PlaceTransfer] = field(default_factory=list)
    cancelled: list[CancelTransfer] = field(default_factory=list)
    decisions: list[ReportHumanDecision] = field(default_factory=list)
    scripts: dict[str, list[SimOutcome]] = field(default_factory=dict)
    ring_times: dict[str, float] = field(default_factory=dict)
    """Per-call ring time from the call's script (``ring_s`` otherwise)."""
    legs: dict[str, list[TransferLeg]] = field(default_factory=dict)
    """Every leg dialled, by call id."""
    _service: Service | None = None
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _waiting: dict[tuple[str, int], asyncio.Future[ReportHumanDecision]] = field(
        default_factory=dict
    )

    async def start(self) -> FakeBridge:
        self._service = await add_service(self.nc, name="sip-bridge", version="0.0.1")
        await add_typed_endpoint(self._service, SPEC[TRANSFER_PLACE], self._place)
        await add_typed_endpoint(self._service, SPEC[TRANSFER_CANCEL], self._cancel)
        await add_typed_endpoint(self._service, SPEC[TRANSFER_SIMULATE], self._simulate)
        await add_typed_endpoint(self._service, SPEC[TRANSFER_DECIDE], self._decide)
        await add_typed_endpoint(self._service, SPEC[TRANSFER_LEGS], self._legs)
        self._events = EventPublisher(self.nc.jetstream())
        await interest_known(self.nc)
        RUNNING.append(self)
        return self

    def open_legs(self, call_id: str) -> list[TransferLeg]:
        return [leg for leg in self.legs.get(call_id, []) if leg.state is not LegState.ENDED]

    async def _simulate(self, cmd: ScriptCarrier) -> CarrierScripted:
        self.scripts[cmd.call_id] = list(cmd.outcomes)
        self.ring_times[cmd.call_id] = cmd.ring_s
        return CarrierScripted(call_id=cmd.call_id, outcomes=list(cmd.outcomes))

    async def _place(self, cmd: PlaceTransfer) -> TransferPlaceReply:
        self.placed.append(cmd)
        task = asyncio.create_task(self._play(cmd))
        self._tasks[cmd.transfer_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(cmd.transfer_id, None))
        assert self._service is not None
        return TransferAccepted(
            call_id=cmd.call_id, transfer_id=cmd.transfer_id, bridge_instance=self._service.id
        )

    async def _cancel(self, cmd: CancelTransfer) -> TransferCancelled:
        self.cancelled.append(cmd)
        task = self._tasks.get(cmd.transfer_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.hangup_gate is not None:
            await self.hangup_gate.wait()
        self._end_legs(cmd.call_id, cmd.transfer_id, "hung up by the bridge")
        event = TransferCancelled(
            call_id=cmd.call_id, transfer_id=cmd.transfer_id, reason=cmd.reason
        )
        await self._events.publish(event)
        return event

    async def _decide(self, report: ReportHumanDecision) -> HumanDecisionNoted:
        waiting = self._waiting.get((report.transfer_id, report.attempt))
        if waiting is None or waiting.done():
            raise RequestError(ErrorCode.REJECTED, "That attempt is not waiting for a decision.")
        self.decisions.append(report)
        waiting.set_result(report)
        return HumanDecisionNoted(
            call_id=report.call_id,
            transfer_id=report.transfer_id,
            attempt=report.attempt,
            decision=report.decision,
        )

    async def _legs(self, query: TransferLegsQuery) -> TransferLegs:
        running = [
            tid
            for tid, task in self._tasks.items()
            if not task.done()
            and any(p.transfer_id == tid and p.call_id == query.call_id for p in self.placed)
        ]
        return TransferLegs(
            call_id=query.call_id, in_progress=running, legs=list(self.legs.get(query.call_id, []))
        )

    async def _play(self, cmd: PlaceTransfer) -> None:
        script = self.scripts.setdefault(cmd.call_id, [])
        ids = {"call_id": cmd.call_id, "transfer_id": cmd.transfer_id}
        consult = cmd.consult_room or f"{cmd.room}-consult-fake"
        if self.queue_position is not None:
            await self._events.publish(
                TransferQueued(
                    **ids, position=self.queue_position, max_wait_s=120.0, estimated_wait_s=12.0
                )
            )
        for attempt, dest in enumerate(cmd.destinations, start=1):
            outcome = script.pop(0) if script else self.default
            self.legs.setdefault(cmd.call_id, []).append(
                TransferLeg(
                    transfer_id=cmd.transfer_id,
                    attempt=attempt,
                    destination_id=dest.id,
                    state=LegState.OPEN,
                )
            )
            await self._events.publish(
                TransferDialing(**ids, destination_id=dest.id, attempt=attempt)
            )
            await self._events.publish(
                TransferRinging(**ids, destination_id=dest.id, attempt=attempt)
            )
            await asyncio.sleep(self.ring_times.get(cmd.call_id, self.ring_s))
            failure: FailureReason | None = _REASONS.get(outcome)
            if outcome in (SimOutcome.ANSWER, SimOutcome.VOICEMAIL):
                failure = await self._answered(cmd, dest.id, attempt, consult)
                if failure is None:
                    return
            self._end_legs(cmd.call_id, cmd.transfer_id, "hung up by the bridge")
            await self._events.publish(
                TransferFailed(
                    **ids,
                    reason=failure or FailureReason.CARRIER_ERROR,
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
                attempt=len(cmd.destinations),
            )
        )

    async def _answered(
        self, cmd: PlaceTransfer, destination_id: str, attempt: int, consult: str
    ) -> FailureReason | None:
        """The far end picked up; ``None`` once connected, else why the attempt failed."""
        ids = {"call_id": cmd.call_id, "transfer_id": cmd.transfer_id}
        warm = cmd.mode is TransferMode.WARM
        waiting: asyncio.Future[ReportHumanDecision] = asyncio.get_running_loop().create_future()
        if warm:
            self._waiting[(cmd.transfer_id, attempt)] = waiting
        await self._events.publish(
            TransferAnswered(
                **ids,
                destination_id=destination_id,
                attempt=attempt,
                consult_room=consult if warm else None,
                human_identity=f"human-{attempt}" if warm else None,
            )
        )
        if warm:
            try:
                report = await asyncio.wait_for(waiting, self.briefing_timeout_s)
            except TimeoutError:
                return FailureReason.HUMAN_DECLINED
            finally:
                self._waiting.pop((cmd.transfer_id, attempt), None)
            if report.decision is HumanDecision.VOICEMAIL:
                return FailureReason.VOICEMAIL
            if report.decision is not HumanDecision.ACCEPT:
                return FailureReason.HUMAN_DECLINED
            await self._events.publish(
                TransferBriefed(**ids, destination_id=destination_id, attempt=attempt)
            )
        self._end_legs(cmd.call_id, cmd.transfer_id, "call ended")
        await self._events.publish(TransferConnected(**ids, destination_id=destination_id))
        return None

    def _end_legs(self, call_id: str, transfer_id: str, why: str) -> None:
        legs = self.legs.get(call_id, [])
        for i, leg in enumerate(legs):
            if leg.transfer_id == transfer_id and leg.state is not LegState.ENDED:
                legs[i] = msgspec.structs.replace(leg, state=LegState.ENDED, ended_by=why)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
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
