"""The transfer desk: admits transfers and runs each one as a task driving its state machine.

For every accepted transfer the desk dials destinations in order through the carrier
driver, bounds each step with a timeout (ring timeout for dialling, a step timeout for
briefing and connecting), fails over on a failed attempt and puts every transition's
event in the transfer's outbox. Cancel requests and shutdown stop a transfer between or
during steps; the leg is hung up and the stop is published as ``cancelled`` or as a
final ``failed``. No NATS here: the service wires the desk to the bus.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from switchboard.contracts.transfer import (
    CancelTransfer,
    FailureReason,
    PlaceTransfer,
    TransferAccepted,
    TransferCancelled,
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
)
from switchboard.sip_bridge.machine import (
    IN_ATTEMPT_STATES,
    AttemptFailure,
    TransferMachine,
    TransferState,
)
from switchboard.sip_bridge.outbox import EventSink, Outbox

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


class _Stopped(Exception):
    """Internal: a cancel request or shutdown interrupted the transfer."""


@dataclass(eq=False)
class _Running:
    request: PlaceTransfer
    machine: TransferMachine
    outbox: Outbox
    reply: TransferAccepted
    skipped: list[Skipped]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_kind: StopKind | None = None
    stop_reason: str = ""
    task: asyncio.Task[None] | None = None
    plan: DialPlan | None = None

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


@dataclass(frozen=True, slots=True)
class DeskTimings:
    """Bounds on each step; see the settings of the same names."""

    max_ring_s: float = 30.0
    step_timeout_s: float = 30.0
    dial_margin_s: float = 5.0
    """Extra time a dial may take past the ring timeout (the carrier enforces the ring
    timeout itself; this only catches a driver that hangs)."""
    cleanup_timeout_s: float = 5.0
    cancel_wait_s: float = 1.5
    """How long a cancel request waits for the leg to be hung up before replying."""


class TransferDesk:
    """Places, runs, cancels and drains transfers."""

    def __init__(
        self,
        driver: CarrierDriver,
        admission: AdmissionControl,
        sink: EventSink,
        timings: DeskTimings | None = None,
    ) -> None:
        self._driver = driver
        self._admission = admission
        self._sink = sink
        self._timings = timings or DeskTimings()
        self._active: dict[str, _Running] = {}
        self._by_call: dict[str, str] = {}
        self._recent: OrderedDict[str, _Finished] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
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
        )
        reply = TransferAccepted(
            call_id=request.call_id,
            transfer_id=request.transfer_id,
            skipped_destination_ids=[s.destination.id for s in screened.skipped],
        )
        running = _Running(
            request=request,
            machine=machine,
            outbox=Outbox(self._sink, name=request.transfer_id),
            reply=reply,
            skipped=screened.skipped,
        )
        self._active[request.transfer_id] = running
        self._by_call[request.call_id] = request.transfer_id
        running.task = asyncio.create_task(self._run(running))
        log.info(
            "Transfer accepted.",
            extra={
                **_ids(request),
                "mode": request.mode.value,
                "destinations": len(screened.allowed),
                "skipped": len(screened.skipped),
            },
        )
        return reply

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
        raise UnknownTransfer("No transfer with that id for that call.")

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
                while machine.state is TransferState.REQUESTED:
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

    async def _attempt(self, running: _Running) -> None:
        machine = running.machine
        self._check_stop(running)
        running.outbox.put(machine.dial())
        plan = self._plan(running)
        running.plan = plan

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
            running.outbox.put(machine.answered(answered.consult_room))
            if machine.mode is TransferMode.WARM:
                await self._step(
                    running,
                    self._driver.brief(plan, answered),
                    timings.step_timeout_s,
                    DialFailed(FailureReason.CARRIER_ERROR, detail="briefing timed out"),
                )
                running.outbox.put(machine.briefed())
            await self._step(
                running,
                self._driver.connect(plan, answered),
                timings.step_timeout_s,
                DialFailed(FailureReason.CARRIER_ERROR, detail="connecting timed out"),
            )
        except DialFailed as failed:
            await self._bounded(self._driver.hang_up(plan), plan)
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
        running.outbox.put(machine.connected())
        log.info("Transfer connected.", extra=plan.log_extra)

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
        machine = running.machine
        plan = running.plan
        if plan is not None and machine.state in IN_ATTEMPT_STATES:
            await self._bounded(self._driver.hang_up(plan), plan)
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
        self._admission.release()
        await running.outbox.close()
        self._active.pop(request.transfer_id, None)
        if self._by_call.get(request.call_id) == request.transfer_id:
            del self._by_call[request.call_id]
        self._remember(
            request.transfer_id,
            _Finished(request.call_id, running.machine.state, running.reply, running.stop_reason),
        )

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
            context=request.context,
            whisper=request.whisper,
        )

    async def _bounded(self, work: Awaitable[None], plan: DialPlan) -> None:
        """Cleanup that must neither hang nor fail the transfer's own bookkeeping."""
        try:
            async with asyncio.timeout(self._timings.cleanup_timeout_s):
                await work
        except Exception:
            log.warning("Transfer cleanup did not complete.", extra=plan.log_extra)

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
