"""The transfer desk: admits transfers and runs each one as a task driving its state machine.

For every accepted transfer the desk waits its turn for a dial slot when none is free
(``queued``), dials destinations in order through the carrier driver, bounds each step
with a timeout (ring timeout for dialling, the briefing timeout for the human's decision,
a step timeout for connecting), fails over on a failed attempt and puts every
transition's event in the transfer's outbox. In a warm transfer the answered human is
briefed by the voice worker's briefing session, whose report (``decide``) is the human's
decision: accept (``briefed``, then the move to the caller) or decline, voicemail, hung up
(the attempt fails with a typed reason and the next destination is dialled). Cancel
requests and shutdown stop a transfer between or during steps; the leg is hung up and the
stop is published as ``cancelled`` or as a final ``failed``. Every leg is tracked until it
ends (``legs``); a connected call is supervised until one party leaves. No NATS here: the
service wires the desk to the bus.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from switchboard.contracts.transfer import (
    CancelTransfer,
    FailureReason,
    HumanDecision,
    HumanDecisionNoted,
    LegState,
    PlaceTransfer,
    ReportHumanDecision,
    TransferAccepted,
    TransferCancelled,
    TransferFailed,
    TransferLeg,
    TransferLegs,
    TransferMode,
    TransferPlaceReply,
    TransferRejected,
)
from switchboard.runtime import telemetry
from switchboard.sip_bridge.admission import AdmissionControl, Refusal, Screened, Skipped
from switchboard.sip_bridge.drivers.base import (
    RING_TIMEOUT,
    CarrierDriver,
    DialFailed,
    DialPlan,
    consult_room_name,
    is_consult_room_of,
)
from switchboard.sip_bridge.journal import Claim, Journal, JournalEntry, NoJournal
from switchboard.sip_bridge.machine import (
    IN_ATTEMPT_STATES,
    AttemptFailure,
    Emitted,
    TransferMachine,
    TransferState,
)
from switchboard.sip_bridge.outbox import EventSink, Outbox
from switchboard.sip_bridge.slots import Ticket

log = logging.getLogger(__name__)
T = TypeVar("T")

RECENT_TRANSFERS = 10_000
"""Finished transfers remembered for idempotent place/cancel retries."""


class StopKind(enum.Enum):
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


class UnknownTransfer(LookupError):
    """No transfer with that id for that call."""


class TransferFinished(RuntimeError):
    """The transfer already ended, so it cannot be cancelled."""

    def __init__(self, state: TransferState) -> None:
        super().__init__(f"The transfer already ended ({state.value}).")
        self.state = state


class TransferIdConflict(ValueError):
    """The transfer id is already used by another call."""


class DeskClosed(RuntimeError):
    """The bridge is shutting down and takes no new transfers."""


class DecisionOutOfTurn(RuntimeError):
    """A human's decision for an attempt that is not waiting for one (stale or early)."""


class _Stopped(Exception):
    """Internal: a cancel request or shutdown interrupted the transfer."""


@dataclass(eq=False, slots=True)
class _Leg:
    """One dialled leg (one attempt), from the dial until it ends."""

    transfer_id: str
    attempt: int
    destination_id: str
    state: LegState = LegState.OPEN
    ended_by: str = ""

    def end(self, why: str) -> None:
        self.state = LegState.ENDED
        self.ended_by = why

    def view(self) -> TransferLeg:
        return TransferLeg(
            transfer_id=self.transfer_id,
            attempt=self.attempt,
            destination_id=self.destination_id,
            state=self.state,
            ended_by=self.ended_by,
        )


@dataclass(eq=False)
class _Running:
    request: PlaceTransfer
    machine: TransferMachine
    outbox: Outbox
    reply: TransferAccepted
    skipped: list[Skipped]
    ticket: Ticket
    consult_room: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_kind: StopKind | None = None
    stop_reason: str = ""
    task: asyncio.Task[None] | None = None
    plan: DialPlan | None = None
    decision: asyncio.Future[ReportHumanDecision] | None = None
    """While the answered human is briefed: where their decision goes."""
    legs: list[_Leg] = field(default_factory=list)

    def request_stop(self, kind: StopKind, reason: str) -> None:
        if self.stop_kind is None:  # The first stop wins; shutdown does not become cancel.
            self.stop_kind = kind
            self.stop_reason = reason
            self.stop.set()


@dataclass(frozen=True, slots=True)
class _Finished:
    call_id: str
    state: TransferState
    reply: TransferPlaceReply
    cancel_reason: str = ""
    legs: tuple[_Leg, ...] = ()


@dataclass(frozen=True, slots=True)
class DeskTimings:
    """Bounds on each step; see the settings of the same names."""

    max_ring_s: float = 30.0
    step_timeout_s: float = 30.0
    briefing_timeout_s: float = 120.0
    """How long an answered human may take to hear the briefing and decide."""
    queue_max_wait_s: float = 120.0
    """How long a transfer may wait in line for a dial slot."""
    dial_margin_s: float = 5.0
    """Extra time a dial may take past the ring timeout (the carrier enforces the ring
    timeout itself; this only catches a driver that hangs)."""
    cleanup_timeout_s: float = 5.0
    cancel_wait_s: float = 1.5
    """How long a cancel request waits for the leg to be hung up before replying."""
    journal_timeout_s: float = 0.5
    """Longest one journal write may take."""
    journal_dial_wait_s: float = 5.0
    """Longest a dial waits for its journal record, written again and again meanwhile:
    past it the transfer fails without dialling (the place reply never waits longer than
    one write: until the dial, a crash leaves nothing to hang up)."""


class TransferDesk:
    """Places, runs, cancels and drains transfers."""

    def __init__(
        self,
        driver: CarrierDriver,
        admission: AdmissionControl,
        sink: EventSink,
        timings: DeskTimings | None = None,
        journal: Journal | None = None,
        owner: str = "",
    ) -> None:
        self._journal: Journal = journal or NoJournal()
        self._owner = owner
        """This instance's id in the journal (its ``nats.micro`` id)."""
        self._driver = driver
        self._admission = admission
        self._sink = sink
        self._timings = timings or DeskTimings()
        self._active: dict[str, _Running] = {}
        self._by_call: dict[str, str] = {}
        self._recent: OrderedDict[str, _Finished] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._bridged: set[asyncio.Task[None]] = set()
        """Connected calls being supervised until one party leaves."""
        self._closing = False

    @property
    def in_progress(self) -> int:
        return len(self._active)

    async def place(self, request: PlaceTransfer) -> TransferPlaceReply:
        """Admit or refuse a transfer; an admitted one runs in the background."""
        earlier = self._earlier_reply(request)
        if earlier is not None:
            return earlier
        if self._closing:
            raise DeskClosed("The bridge is shutting down.")
        if request.call_id in self._by_call:
            return self._refuse(
                request,
                Refusal(
                    FailureReason.REJECTED_BY_POLICY,
                    "a transfer is already in progress for this call",
                    Screened(),
                ),
            )
        consult_room = request.consult_room or consult_room_name(request.room, request.transfer_id)
        if not is_consult_room_of(consult_room, request.room):
            # A consult room anywhere else could be another caller's room.
            return self._refuse(
                request,
                Refusal(
                    FailureReason.REJECTED_BY_POLICY,
                    "the consult room must be named <room>-consult-<token>",
                    Screened(),
                ),
            )
        decision = self._admission.admit(request.destinations)
        _log_skipped(request, decision.screened.skipped)
        if isinstance(decision, Refusal):
            return self._refuse(request, decision)
        screened = decision.screened
        machine = TransferMachine(
            call_id=request.call_id,
            transfer_id=request.transfer_id,
            destinations=screened.allowed,
            mode=request.mode,
            decision_id=request.decision_id,
        )
        reply = TransferAccepted(
            call_id=request.call_id,
            transfer_id=request.transfer_id,
            skipped_destination_ids=[s.destination.id for s in screened.skipped],
            bridge_instance=self._owner or None,
        )
        running = _Running(
            request=request,
            machine=machine,
            outbox=Outbox(self._sink, name=request.transfer_id),
            reply=reply,
            skipped=screened.skipped,
            ticket=decision.ticket,
            consult_room=consult_room,
        )
        self._active[request.transfer_id] = running
        self._by_call[request.call_id] = request.transfer_id
        await self._record(running)
        running.task = asyncio.create_task(self._run(running))
        log.info(
            "Transfer accepted.",
            extra={
                **_ids(request),
                "mode": request.mode.value,
                "destinations": len(screened.allowed),
                "skipped": len(screened.skipped),
                "queued": not decision.ticket.granted,
            },
        )
        return reply

    def decide(self, report: ReportHumanDecision) -> HumanDecisionNoted:
        """The briefing session's report of what the answered human decided."""
        running = self._active.get(report.transfer_id)
        if running is None or running.request.call_id != report.call_id:
            finished = self._recent.get(report.transfer_id)
            if finished is not None and finished.call_id == report.call_id:
                raise TransferFinished(finished.state)
            raise UnknownTransfer("No transfer with that id for that call.")
        machine = running.machine
        waiting = running.decision
        if (
            waiting is None
            or waiting.done()
            or machine.state is not TransferState.ANSWERED
            or machine.attempt != report.attempt
        ):
            raise DecisionOutOfTurn(
                f"Attempt {report.attempt} is not waiting for a decision "
                f"(the transfer is {machine.state.value} at attempt {machine.attempt})."
            )
        waiting.set_result(report)
        log.info(
            "The human decided.",
            extra={**_ids(running.request), "attempt": report.attempt, "decision": report.decision},
        )
        return HumanDecisionNoted(
            call_id=report.call_id,
            transfer_id=report.transfer_id,
            attempt=report.attempt,
            decision=report.decision,
        )

    def legs(self, call_id: str) -> TransferLegs:
        """The call's transfers still running and every leg they dialled, in order."""
        in_progress = [t for t, r in self._active.items() if r.request.call_id == call_id]
        running = [r for r in self._active.values() if r.request.call_id == call_id]
        legs = [leg for r in running for leg in r.legs]
        legs += [leg for f in self._recent.values() if f.call_id == call_id for leg in f.legs]
        legs.sort(key=lambda leg: (leg.transfer_id, leg.attempt))
        return TransferLegs(
            call_id=call_id, in_progress=in_progress, legs=[leg.view() for leg in legs]
        )

    async def cancel(self, request: CancelTransfer) -> TransferCancelled:
        """Stop a transfer; replies once the leg is hung up (or after a short wait)."""
        running = self._active.get(request.transfer_id)
        if running is not None and running.request.call_id == request.call_id:
            if running.stop_kind is StopKind.SHUTDOWN:
                raise DeskClosed("The bridge is shutting down; the transfer is being failed.")
            running.request_stop(StopKind.CANCEL, request.reason)
            assert running.task is not None
            await asyncio.wait({running.task}, timeout=self._timings.cancel_wait_s)
            state = running.machine.state
            if state is TransferState.CANCELLED or not running.machine.terminal:
                return self._cancelled(request, running.stop_reason)
            raise TransferFinished(state)
        finished = self._recent.get(request.transfer_id)
        if finished is not None and finished.call_id == request.call_id:
            if finished.state is TransferState.CANCELLED:
                return self._cancelled(request, finished.cancel_reason)
            raise TransferFinished(finished.state)
        return await self._cancel_from_journal(request)

    async def recover_orphans(self) -> int:
        """End every transfer whose bridge instance no longer runs; how many were ended.

        Run at start-up and then periodically: a crashed instance publishes nothing more,
        so its transfers end here, with their legs hung up and a final ``transfer.failed``
        (``bridge_lost``)."""
        ended = 0
        owners: dict[str, bool] = {}
        for claim in await self._journal.active():
            owner = claim.entry.owner
            if owner == self._owner or claim.entry.transfer_id in self._active:
                continue
            if owner not in owners:
                owners[owner] = await self._journal.owner_alive(owner)
            if not owners[owner] and await self._recover(claim, cancel_reason=None) is not None:
                ended += 1
        return ended

    async def drain(self, grace_s: float) -> None:
        """Stop taking transfers, let running ones finish for ``grace_s``, fail the rest."""
        self._closing = True
        tasks = {r.task for r in self._active.values() if r.task is not None}
        if tasks:
            log.info("Waiting for transfers in progress.", extra={"transfers": len(tasks)})
            await asyncio.wait(tasks, timeout=grace_s)
        left = list(self._active.values())
        for running in left:
            running.request_stop(StopKind.SHUTDOWN, "the bridge shut down")
        remaining = {r.task for r in left if r.task is not None}
        if remaining:
            log.warning("Failing transfers cut short by shutdown.", extra={"transfers": len(left)})
            await asyncio.wait(remaining, timeout=self._timings.cleanup_timeout_s * 3)
        if self._background:
            await asyncio.wait(self._background, timeout=self._timings.cleanup_timeout_s)
        if self._bridged:
            # Connected calls go on without us; LiveKit ends each room when it empties.
            log.warning(
                "Leaving connected calls unsupervised.", extra={"calls": len(self._bridged)}
            )
            for task in self._bridged:
                task.cancel()
            await asyncio.wait(self._bridged, timeout=self._timings.cleanup_timeout_s)

    def _earlier_reply(self, request: PlaceTransfer) -> TransferPlaceReply | None:
        # A retried place (lost reply) must not dial twice: answer what we answered before.
        running = self._active.get(request.transfer_id)
        finished = self._recent.get(request.transfer_id)
        call_id = running.request.call_id if running else finished.call_id if finished else None
        if call_id is None:
            return None
        if call_id != request.call_id:
            raise TransferIdConflict("That transfer id is already used by another call.")
        return running.reply if running else finished.reply if finished else None

    def _refuse(self, request: PlaceTransfer, refusal: Refusal) -> TransferRejected:
        machine = TransferMachine(
            call_id=request.call_id,
            transfer_id=request.transfer_id,
            destinations=[],
            mode=request.mode,
            decision_id=request.decision_id,
        )
        outbox = Outbox(self._sink, name=request.transfer_id)
        for skipped in refusal.screened.skipped:
            outbox.put(machine.skip(skipped.destination, skipped.rule))
        outbox.put(machine.abandon(AttemptFailure(refusal.reason, detail=refusal.detail)))
        # Publish in the background so a slow bus never delays the refusal itself.
        self._track(outbox.close())
        reply = TransferRejected(
            call_id=request.call_id,
            transfer_id=request.transfer_id,
            reason=refusal.reason,
            detail=refusal.detail,
        )
        self._remember(request.transfer_id, _Finished(request.call_id, machine.state, reply))
        log.info(
            "Transfer refused.",
            extra={**_ids(request), "reason": refusal.reason.value, "detail": refusal.detail},
        )
        return reply

    async def _run(self, running: _Running) -> None:
        machine = running.machine
        attributes = {
            "switchboard.call_id": machine.call_id,
            "switchboard.transfer_id": machine.transfer_id,
        }
        with telemetry.tracer().start_as_current_span(
            "sip_bridge.transfer", attributes=attributes
        ) as span:
            try:
                for skipped in running.skipped:
                    running.outbox.put(machine.skip(skipped.destination, skipped.rule))
                await self._wait_for_slot(running)
                while machine.state in (TransferState.REQUESTED, TransferState.QUEUED):
                    if machine.attempt:
                        await self._step(running, self._admission.pace(), None, _NEVER)
                    await self._attempt(running)
            except _Stopped:
                await self._stopped(running)
            except Exception:
                log.exception("A transfer failed unexpectedly.", extra=_ids(running.request))
                if not machine.terminal:
                    failure = AttemptFailure(FailureReason.CARRIER_ERROR, detail="internal error")
                    running.outbox.put(machine.abandon(failure))
            finally:
                span.set_attribute("switchboard.transfer.state", machine.state.value)
                await self._finish(running)

    async def _wait_for_slot(self, running: _Running) -> None:
        """A busy moment is a queue: wait in line for a dial slot, up to the maximum wait."""
        ticket = running.ticket
        if ticket.granted:
            return
        slots = self._admission.slots
        machine = running.machine
        max_wait = self._timings.queue_max_wait_s
        running.outbox.put(
            machine.queued(slots.position(ticket), max_wait, slots.estimated_wait(ticket))
        )
        log.info(
            "Transfer waiting for a dial slot.",
            extra={**_ids(running.request), "position": slots.position(ticket)},
        )
        waiter = asyncio.ensure_future(slots.wait(ticket))
        stopper = asyncio.ensure_future(running.stop.wait())
        try:
            await asyncio.wait(
                {waiter, stopper}, timeout=max_wait, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            if not waiter.done():
                waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        # A slot granted at the last moment is held (and released when the transfer ends).
        self._check_stop(running)
        if not ticket.granted:
            failure = AttemptFailure(
                FailureReason.QUEUE_TIMEOUT, detail=f"no dial slot within {max_wait:g} s"
            )
            running.outbox.put(machine.abandon(failure))
            log.warning("Transfer gave up waiting for a dial slot.", extra=_ids(running.request))

    async def _attempt(self, running: _Running) -> None:
        machine = running.machine
        request = running.request
        self._check_stop(running)
        dialing = machine.dial()
        plan = self._plan(running)
        # No leg without its record: a crash during the dial still hangs this leg up.
        if not await self._step(running, self._record_until_written(running, plan), None, _NEVER):
            running.outbox.put(
                machine.abandon(AttemptFailure(FailureReason.CARRIER_ERROR, detail=NOT_RECORDED))
            )
            log.error("A transfer could not be recorded; nothing dialled.", extra=_ids(request))
            return
        running.outbox.put(dialing)
        running.plan = plan
        leg = _Leg(plan.transfer_id, plan.attempt, plan.destination.id)
        running.legs.append(leg)

        async def on_ringing() -> None:
            if machine.state is TransferState.DIALING:
                running.outbox.put(machine.ringing())

        timings = self._timings
        try:
            answered = await self._step(
                running,
                self._driver.dial(plan, on_ringing),
                plan.ring_timeout_s + timings.dial_margin_s,
                DialFailed(FailureReason.NO_ANSWER, detail=RING_TIMEOUT),
            )
            if machine.mode is TransferMode.WARM:
                # Ready for the decision before anyone can hear of the answer.
                decision = running.decision = asyncio.get_running_loop().create_future()
            running.outbox.put(machine.answered(answered.consult_room, answered.human_identity))
            if machine.mode is TransferMode.WARM:
                await self._step(
                    running,
                    self._human_decides(running, plan, decision),
                    timings.briefing_timeout_s,
                    DialFailed(
                        FailureReason.HUMAN_DECLINED, detail="no decision within the briefing time"
                    ),
                )
                running.outbox.put(machine.briefed())
            await self._step(
                running,
                self._driver.connect(plan, answered),
                timings.step_timeout_s,
                DialFailed(FailureReason.CARRIER_ERROR, detail="connecting timed out"),
            )
        except DialFailed as failed:
            running.decision = None
            if await self._bounded(self._driver.hang_up(plan), plan):
                leg.end("hung up by the bridge")
            for emitted in machine.fail(failed.failure):
                running.outbox.put(emitted)
            log.info(
                "Transfer attempt failed.",
                extra={
                    **plan.log_extra,
                    "reason": failed.failure.reason.value,
                    "sip_status": failed.failure.sip_status,
                    "final": machine.terminal,
                },
            )
            return
        leg.state = LegState.BRIDGED
        running.outbox.put(machine.connected())
        log.info("Transfer connected.", extra=plan.log_extra)

    async def _human_decides(
        self,
        running: _Running,
        plan: DialPlan,
        decision: asyncio.Future[ReportHumanDecision],
    ) -> None:
        """Wait for the briefed human's decision; return on accept, raise otherwise. The
        carrier seeing the human hang up first is a decline too."""
        left = asyncio.ensure_future(self._driver.human_left(plan))
        either: set[asyncio.Future[Any]] = {decision, left}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not decision.done() and left.exception() is not None:
                log.warning(
                    "Could not follow the human's leg; waiting for the briefing's report.",
                    extra=plan.log_extra,
                )
                await decision
        finally:
            running.decision = None
            left.cancel()
            await asyncio.gather(left, return_exceptions=True)
        if not decision.done():
            raise DialFailed(
                FailureReason.HUMAN_DECLINED, detail="the human hung up during the briefing"
            )
        report = decision.result()
        match report.decision:
            case HumanDecision.ACCEPT:
                return
            case HumanDecision.VOICEMAIL:
                raise DialFailed(FailureReason.VOICEMAIL, detail="an answering machine picked up")
            case HumanDecision.HUNG_UP:
                raise DialFailed(
                    FailureReason.HUMAN_DECLINED, detail="the human hung up during the briefing"
                )
            case _:
                why = report.decline_reason.value if report.decline_reason else "other"
                raise DialFailed(FailureReason.HUMAN_DECLINED, detail=f"declined: {why}")

    async def _step(
        self, running: _Running, work: Awaitable[T], timeout: float | None, on_timeout: DialFailed
    ) -> T:
        """Run one driver step until it ends, the transfer is stopped, or it times out."""
        self._check_stop(running)
        step = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(running.stop.wait())
        try:
            done, _ = await asyncio.wait(
                {step, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            if not step.done():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
        if step in done:
            if step.cancelled():
                raise DialFailed(FailureReason.CARRIER_ERROR, detail="carrier step cancelled")
            error = step.exception()
            if error is None:
                return step.result()
            if isinstance(error, DialFailed):
                raise error
            log.error(
                "A carrier driver failed unexpectedly.",
                exc_info=error,
                extra=_ids(running.request),
            )
            raise DialFailed(FailureReason.CARRIER_ERROR, detail="carrier driver error")
        self._check_stop(running)
        raise on_timeout

    async def _stopped(self, running: _Running) -> None:
        running.decision = None
        machine = running.machine
        plan = running.plan
        if plan is not None and machine.state in IN_ATTEMPT_STATES:
            hung_up = await self._bounded(self._driver.hang_up(plan), plan)
            for leg in running.legs:
                if hung_up and leg.state is LegState.OPEN:
                    leg.end("hung up by the bridge")
        if machine.terminal:
            return
        if running.stop_kind is StopKind.CANCEL:
            running.outbox.put(machine.cancel(running.stop_reason))
            log.info("Transfer cancelled.", extra=_ids(running.request))
        else:
            failure = AttemptFailure(FailureReason.CARRIER_ERROR, detail=running.stop_reason)
            running.outbox.put(machine.abandon(failure))
            log.warning("Transfer failed by shutdown.", extra=_ids(running.request))

    async def _finish(self, running: _Running) -> None:
        request = running.request
        if running.plan is not None:
            await self._bounded(self._driver.finish(running.plan), running.plan)
        if running.ticket.granted:
            self._admission.release()
        else:
            self._admission.slots.leave(running.ticket)
        if running.machine.state is TransferState.CONNECTED and running.plan is not None:
            self._supervise(running.plan, running.legs[-1])
        await running.outbox.close()
        # Retried like the dial's: an end left unrecorded would have a later sweep (once
        # this instance is gone) hang up a connected call and fail it a second time.
        await self._record_until_written(running, running.plan)
        self._active.pop(request.transfer_id, None)
        if self._by_call.get(request.call_id) == request.transfer_id:
            del self._by_call[request.call_id]
        self._remember(
            request.transfer_id,
            _Finished(
                request.call_id,
                running.machine.state,
                running.reply,
                running.stop_reason,
                tuple(running.legs),
            ),
        )

    async def _record_until_written(self, running: _Running, plan: DialPlan | None) -> bool:
        """Write the transfer's record (``plan``: the attempt about to be dialled), again
        with a growing pause while the bucket is unreachable, for up to
        ``journal_dial_wait_s``."""
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._timings.journal_dial_wait_s),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_result(lambda written: not written),
            retry_error_callback=lambda _: False,
        )
        written: bool = await retrying(self._record, running, plan)
        return written

    async def _record(self, running: _Running, plan: DialPlan | None = None) -> bool:
        """Write the transfer's journal record (one bounded try); whether it was written.
        ``plan``: the attempt about to be dialled, when it is not ``running.plan`` yet."""
        machine = running.machine
        request = running.request
        plan = plan or running.plan
        entry = JournalEntry(
            call_id=request.call_id,
            transfer_id=request.transfer_id,
            owner=self._owner,
            room=request.room,
            caller_identity=request.caller_identity,
            mode=request.mode,
            consult_room=running.consult_room,
            ring_timeout_s=min(request.ring_timeout_s, self._timings.max_ring_s),
            attempt=machine.attempt,
            destination=plan.destination if plan is not None else None,
            ended=machine.state.value if machine.terminal else "",
            cancel_reason=running.stop_reason if machine.state is TransferState.CANCELLED else "",
            decision_id=request.decision_id,
        )
        try:
            async with asyncio.timeout(self._timings.journal_timeout_s):
                await self._journal.save(entry)
        except Exception as exc:
            log.warning(
                "Could not record the transfer in the journal.",
                extra={**_ids(request), "error": type(exc).__name__},
            )
            return False
        return True

    async def _cancel_from_journal(self, request: CancelTransfer) -> TransferCancelled:
        """A cancel for a transfer this instance does not hold: answer from its journal
        record, ending it first when the instance that ran it is gone."""
        for _ in range(2):  # a second look when another instance claimed it meanwhile
            claim = await self._journal.load(request.transfer_id)
            if claim is None or claim.entry.call_id != request.call_id:
                break
            entry = claim.entry
            if entry.ended:
                if entry.ended == TransferState.CANCELLED.value:
                    return self._cancelled(request, entry.cancel_reason)
                raise TransferFinished(TransferState(entry.ended))
            if entry.owner == self._owner or await self._journal.owner_alive(entry.owner):
                break  # running on another instance, which the cancel did not reach
            state = await self._recover(claim, cancel_reason=request.reason)
            if state is TransferState.CANCELLED:
                return self._cancelled(request, request.reason)
        raise UnknownTransfer("No transfer with that id for that call.")

    async def _recover(self, claim: Claim, cancel_reason: str | None) -> TransferState | None:
        """Take over a crashed instance's transfer and end it: hang up the leg it was
        dialling, publish the final event, record the end. ``None`` if another instance
        took it first."""
        if not await self._journal.claim(claim, self._owner):
            return None
        entry = claim.entry
        ids = {"call_id": entry.call_id, "transfer_id": entry.transfer_id}
        legs: tuple[_Leg, ...] = ()
        if entry.attempt and entry.destination is not None:
            plan = DialPlan(
                call_id=entry.call_id,
                transfer_id=entry.transfer_id,
                attempt=entry.attempt,
                destination=entry.destination,
                room=entry.room,
                caller_identity=entry.caller_identity,
                mode=entry.mode,
                ring_timeout_s=entry.ring_timeout_s,
                consult_room=entry.consult_room,
            )
            leg = _Leg(entry.transfer_id, entry.attempt, entry.destination.id)
            if await self._bounded(self._driver.hang_up(plan), plan):
                leg.end("hung up by another bridge instance")
            await self._bounded(self._driver.finish(plan), plan)
            legs = (leg,)
        outbox = Outbox(self._sink, name=entry.transfer_id)
        if cancel_reason is not None:
            state = TransferState.CANCELLED
            event: Emitted = Emitted(
                TransferCancelled(
                    call_id=entry.call_id,
                    transfer_id=entry.transfer_id,
                    reason=cancel_reason,
                    decision_id=entry.decision_id,
                ),
                f"{entry.transfer_id}:cancelled",
            )
        else:
            state = TransferState.FAILED
            event = Emitted(
                TransferFailed(
                    call_id=entry.call_id,
                    transfer_id=entry.transfer_id,
                    reason=FailureReason.BRIDGE_LOST,
                    final=True,
                    destination_id=entry.destination.id if entry.destination else None,
                    attempt=entry.attempt,
                    detail="the bridge instance running it stopped",
                    decision_id=entry.decision_id,
                ),
                # The id the machine gives a final failure: if the crashed instance got
                # its own out, JetStream drops this one.
                f"{entry.transfer_id}:failed:final",
            )
        outbox.put(event)
        await outbox.close()
        ended = msgspec.structs.replace(
            entry, owner=self._owner, ended=state.value, cancel_reason=cancel_reason or ""
        )
        try:
            async with asyncio.timeout(self._timings.cleanup_timeout_s):
                await self._journal.save(ended)
        except Exception as exc:
            log.warning(
                "Could not record the recovered transfer's end.",
                extra={**ids, "error": type(exc).__name__},
            )
        reply = TransferAccepted(call_id=entry.call_id, transfer_id=entry.transfer_id)
        self._remember(
            entry.transfer_id,
            _Finished(entry.call_id, state, reply, cancel_reason or "", legs),
        )
        log.warning(
            "Ended a transfer whose bridge instance stopped.", extra={**ids, "state": state.value}
        )
        return state

    def _plan(self, running: _Running) -> DialPlan:
        request = running.request
        machine = running.machine
        assert machine.destination is not None
        return DialPlan(
            call_id=request.call_id,
            transfer_id=request.transfer_id,
            attempt=machine.attempt,
            destination=machine.destination,
            room=request.room,
            caller_identity=request.caller_identity,
            mode=request.mode,
            ring_timeout_s=min(request.ring_timeout_s, self._timings.max_ring_s),
            consult_room=running.consult_room,
            context=request.context,
        )

    def _supervise(self, plan: DialPlan, leg: _Leg) -> None:
        """Follow a connected call until one party leaves; then its leg is over."""

        async def supervise() -> None:
            try:
                await self._driver.supervise(plan)
            except Exception:
                log.exception("Could not follow a connected call.", extra=plan.log_extra)
                return
            leg.end("call ended")
            log.info("Connected call ended.", extra=plan.log_extra)

        task = asyncio.create_task(supervise())
        self._bridged.add(task)
        task.add_done_callback(self._bridged.discard)

    async def _bounded(self, work: Awaitable[None], plan: DialPlan) -> bool:
        """Cleanup that must neither hang nor fail the transfer's own bookkeeping; whether
        it completed."""
        try:
            async with asyncio.timeout(self._timings.cleanup_timeout_s):
                await work
        except Exception:
            log.warning("Transfer cleanup did not complete.", extra=plan.log_extra)
            return False
        return True

    def _check_stop(self, running: _Running) -> None:
        if running.stop.is_set():
            raise _Stopped

    def _cancelled(self, request: CancelTransfer, reason: str) -> TransferCancelled:
        return TransferCancelled(
            call_id=request.call_id, transfer_id=request.transfer_id, reason=reason
        )

    def _remember(self, transfer_id: str, finished: _Finished) -> None:
        self._recent[transfer_id] = finished
        self._recent.move_to_end(transfer_id)
        while len(self._recent) > RECENT_TRANSFERS:
            self._recent.popitem(last=False)

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


NOT_RECORDED = "the transfer could not be recorded, so nothing was dialled"
_NEVER = DialFailed(FailureReason.CARRIER_ERROR, detail="unreachable: pacing has no timeout")


def _log_skipped(request: PlaceTransfer, skipped: list[Skipped]) -> None:
    # Refused destinations are the first sign of a misconfigured router or of fraud, so
    # each one is a warning: its id and the rule, never its address.
    for item in skipped:
        log.warning(
            "A destination was refused by the allow-list.",
            extra={**_ids(request), "destination_id": item.destination.id, "rule": item.rule},
        )


def _ids(request: PlaceTransfer) -> dict[str, object]:
    return {"call_id": request.call_id, "transfer_id": request.transfer_id}
