"""The simulated carrier: the full transfer lifecycle without LiveKit, for local runs and
fault tests.

Each dial attempt of a call takes the next outcome from that call's script (set through
``sb.transfer.simulate``); attempts beyond the script use the configured default. The
far end behaves like a phone network: busy (486) and carrier errors (503) come back
without ringing; no answer (480) and decline (603) come after ringing; ``answer`` and
``voicemail`` both answer, because telling a person from a machine is the briefing's job
(the voice worker's scripted human says the greeting). Like the LiveKit SIP service, it
enforces the request's ring timeout itself. It keeps the legs it placed, so tests can see
that every one was hung up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from switchboard.contracts.simulation import SimOutcome
from switchboard.contracts.transfer import FailureReason, TransferMode
from switchboard.sip_bridge.drivers import sip_status
from switchboard.sip_bridge.drivers.base import (
    RING_TIMEOUT,
    Answered,
    DialFailed,
    DialPlan,
    OnRinging,
)

log = logging.getLogger(__name__)

MAX_SCRIPTED_CALLS = 10_000
"""Scripts are per call and calls never say goodbye to the bridge; keep the newest."""


@dataclass(slots=True)
class _Script:
    outcomes: deque[SimOutcome]
    ring_s: float


class CarrierScripts:
    """Per-call scripts of what successive dial attempts do."""

    def __init__(self, default: SimOutcome, ring_s: float) -> None:
        self.default = default
        self.ring_s = ring_s
        self._scripts: OrderedDict[str, _Script] = OrderedDict()

    def set(self, call_id: str, outcomes: Sequence[SimOutcome], ring_s: float) -> None:
        """Replace the script of ``call_id``."""
        self._scripts.pop(call_id, None)
        self._scripts[call_id] = _Script(deque(outcomes), ring_s)
        while len(self._scripts) > MAX_SCRIPTED_CALLS:
            self._scripts.popitem(last=False)

    def next(self, call_id: str) -> tuple[SimOutcome, float]:
        """The outcome and ring time of the call's next attempt."""
        script = self._scripts.get(call_id)
        if script is None:
            return self.default, self.ring_s
        outcome = script.outcomes.popleft() if script.outcomes else self.default
        return outcome, script.ring_s


def _failure(code: int, reason: FailureReason | None = None, detail: str = "") -> DialFailed:
    return DialFailed(
        reason or sip_status.reason_for_status(code), code, sip_status.phrase(code), detail
    )


class SimulatedCarrier:
    """A ``CarrierDriver`` that plays scripted outcomes with realistic timing."""

    name = "simulated"

    def __init__(self, scripts: CarrierScripts) -> None:
        self.scripts = scripts
        self._outcomes: dict[tuple[str, int], SimOutcome] = {}
        self.open_legs: set[tuple[str, int]] = set()
        """(transfer id, attempt) of every leg placed and not hung up yet."""
        self.dials = 0
        """Legs placed so far."""

    async def dial(self, plan: DialPlan, on_ringing: OnRinging) -> Answered:
        outcome, ring_s = self.scripts.next(plan.call_id)
        key = (plan.transfer_id, plan.attempt)
        self._outcomes[key] = outcome
        self.open_legs.add(key)
        self.dials += 1
        log.info("Simulated carrier dialling.", extra={**plan.log_extra, "outcome": outcome.value})
        if outcome is SimOutcome.ERROR:
            raise _failure(sip_status.SERVICE_UNAVAILABLE, detail="simulated carrier error")
        if outcome is SimOutcome.BUSY:
            await asyncio.sleep(min(ring_s, plan.ring_timeout_s))
            raise _failure(sip_status.BUSY_HERE)
        await on_ringing()
        if ring_s >= plan.ring_timeout_s:
            # We give up before the far end decides: no final SIP response to report.
            await asyncio.sleep(plan.ring_timeout_s)
            raise DialFailed(FailureReason.NO_ANSWER, detail=RING_TIMEOUT)
        await asyncio.sleep(ring_s)
        if outcome is SimOutcome.NO_ANSWER:
            raise _failure(sip_status.TEMPORARILY_UNAVAILABLE)
        if outcome is SimOutcome.DECLINE:
            raise _failure(sip_status.DECLINE)
        if plan.mode is TransferMode.COLD:
            return Answered()
        return Answered(consult_room=plan.consult_room, human_identity=plan.human_identity)

    async def human_left(self, plan: DialPlan) -> None:
        # A simulated human hangs up through the briefing session (the voice worker's
        # scripted human), which reports it as the human's decision.
        await asyncio.Event().wait()

    async def connect(self, plan: DialPlan, answered: Answered) -> None:
        if (
            plan.mode is TransferMode.COLD
            and self._outcomes.get((plan.transfer_id, plan.attempt)) is SimOutcome.VOICEMAIL
        ):
            raise DialFailed(FailureReason.VOICEMAIL, detail="an answering machine picked up")

    async def supervise(self, plan: DialPlan) -> None:
        # The simulated caller and human say nothing after they are put together: the
        # call ends as it starts, and the human's leg with it.
        self.open_legs.discard((plan.transfer_id, plan.attempt))

    async def hang_up(self, plan: DialPlan) -> None:
        self._outcomes.pop((plan.transfer_id, plan.attempt), None)
        self.open_legs.discard((plan.transfer_id, plan.attempt))

    async def finish(self, plan: DialPlan) -> None:
        for key in [k for k in self._outcomes if k[0] == plan.transfer_id]:
            del self._outcomes[key]

    async def aclose(self) -> None:
        self._outcomes.clear()
