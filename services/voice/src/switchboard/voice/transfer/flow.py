"""A human transfer from the caller's side: placed with the sip-bridge and followed, with
the caller on hold, until a person takes the call, every destination fails, or the caller
hangs up.

Warm (the default): the briefing session is in the consult room before the transfer is
placed; each human who answers is briefed there and decides. On "accept" the caller hears
a goodbye, then the decision goes to the bridge, which moves the human to the caller
(``connected``). "Decline", voicemail or a hang-up go to the bridge too, which fails that
attempt and dials the next destination while the caller hears that another colleague is
being tried. A caller who hangs up cancels the transfer: the bridge hangs up every leg.
Cold (SIP REFER, where the rules ask for it): nobody is briefed; the bridge refers the
caller and reports the outcome.

Nothing here says a person is there before the bridge and the human said so.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession

from switchboard.contracts.base import new_id
from switchboard.contracts.escalation import HandoffDecision, HandoffTarget, TransferMode
from switchboard.contracts.handoff import HandoffContext
from switchboard.contracts.transfer import (
    CALLER_HUNG_UP,
    FailureReason,
    HumanDecision,
    PlaceTransfer,
    ReportHumanDecision,
    TransferAnswered,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferQueued,
    TransferRejected,
)
from switchboard.voice.agents.briefing import Verdict
from switchboard.voice.agents.speech import speak
from switchboard.voice.call import Call
from switchboard.voice.clients.transfer import TransferStatus, TransferWatch
from switchboard.voice.transfer.briefing import Briefing
from switchboard.voice.transfer.facts import BriefingFacts
from switchboard.voice.transfer.hold import STILL_TRYING, CallerHold

log = logging.getLogger(__name__)

MAX_DESTINATIONS = 10
TRYING_NEXT = "That colleague isn't available, so I'm trying another one. Thank you for holding."
GOODBYE = "A colleague from our team has taken your call. I'm connecting you now. Goodbye!"
RETRYING = (
    "I'm sorry, that connection didn't go through. I'm trying again; please stay on the line."
)
GAVE_UP = "nobody took the call in time"


QUEUE_NOTICE_S = 2.0
"""A wait for a dial slot shorter than this is not worth telling the caller about."""


def queued_line(event: TransferQueued) -> str | None:
    """What a caller waiting for a free line hears: their place, and the wait when known.
    ``None`` when the wait is too short to mention."""
    wait = event.estimated_wait_s
    if wait is not None and wait < QUEUE_NOTICE_S:
        return None
    when = f", and it should be about {_duration(wait)}" if wait is not None else ""
    return (
        "Our lines to the team are all busy right now, so I've put you in line. "
        f"You're number {event.position}{when}. Please stay on the line."
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} seconds"
    return f"{round(seconds / 60)} minutes"


class Ending(enum.Enum):
    CONNECTED = "connected"
    FAILED = "failed"
    CALLER_LEFT = "caller_left"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class TransferResult:
    ending: Ending
    reason: FailureReason | None = None


def transfer_mode(decision: HandoffDecision) -> TransferMode:
    """A voicemail box cannot be briefed: voicemail targets are always referred (cold)."""
    if decision.target is HandoffTarget.VOICEMAIL:
        return TransferMode.COLD
    return decision.transfer_mode


class HumanTransfer:
    """One transfer attempt sequence, from placing it to how it ended."""

    def __init__(
        self,
        call: Call,
        session: AgentSession[Any],
        decision: HandoffDecision,
        ctx: HandoffContext,
        facts: BriefingFacts,
        hold: CallerHold,
    ) -> None:
        self._call = call
        self._session = session
        self._decision = decision
        self._ctx = ctx
        self._facts = facts
        self._hold = hold
        self._mode = transfer_mode(decision)
        self.transfer_id = new_id()
        self._briefing: Briefing | None = None
        self._verdict: asyncio.Future[Verdict] | None = None
        self._verdict_attempt = 0
        self._accepted_attempt: int | None = None

    async def run(self) -> TransferResult:
        call = self._call
        client = call.ports.transfer
        settled = False
        if self._mode is TransferMode.WARM:
            line = call.ports.consult.open(call.state.info, self.transfer_id)
            self._briefing = Briefing(line, self._facts, call_id=call.call_id)
        try:
            await self._hold.play()
            if self._briefing is not None and not await self._open_briefing(self._briefing):
                settled = True
                return TransferResult(Ending.FAILED, FailureReason.CARRIER_ERROR)
            command = self._command()
            async with client.watch(call.call_id, self.transfer_id) as watch:
                call.transfer_id = call.state.transfer_id = self.transfer_id
                reply = await client.place(command)
                if isinstance(reply, TransferRejected):
                    settled = True
                    log.warning(
                        "Transfer rejected before dialling.",
                        extra={"call_id": call.call_id, "reason": str(reply.reason)},
                    )
                    return TransferResult(Ending.FAILED, reply.reason)
                result = await self._follow(watch, reply.bridge_instance)
                settled = True
                return result
        finally:
            if not settled and call.transfer_id is not None:
                # Cut short (the session closed under us): no leg may outlive the call.
                call.spawn(client.cancel(call.call_id, self.transfer_id, CALLER_HUNG_UP))
            call.transfer_id = None
            if self._briefing is not None:
                await self._briefing.close()

    async def _open_briefing(self, briefing: Briefing) -> bool:
        """Nobody is dialled unless the briefing session waits in the consult room: a human
        who answered into an empty room could not be briefed, nor accept."""
        try:
            await briefing.open()
        except Exception:
            log.exception(
                "The consult room could not be opened.", extra={"call_id": self._call.call_id}
            )
            return False
        return True

    def _command(self) -> PlaceTransfer:
        info = self._call.state.info
        return PlaceTransfer(
            call_id=info.call_id,
            room=info.room,
            caller_identity=info.caller_identity,
            destinations=self._decision.destinations[:MAX_DESTINATIONS],
            mode=self._mode,
            transfer_id=self.transfer_id,
            decision_id=self._decision.decision_id,
            context=self._ctx,
            consult_room=self._briefing.room if self._briefing is not None else None,
        )

    async def _follow(self, watch: TransferWatch, instance: str | None) -> TransferResult:
        call = self._call
        loop = asyncio.get_running_loop()
        deadline = loop.time() + call.settings.transfer_answer_timeout_s
        next_event: asyncio.Future[TransferStatus] = asyncio.ensure_future(watch.get())
        left = asyncio.ensure_future(call.wait_caller_left())
        silent = asyncio.ensure_future(self._bridge_silence(instance))
        try:
            while True:
                waits: set[asyncio.Future[Any]] = {next_event, left, silent}
                if self._verdict is not None:
                    waits.add(self._verdict)
                done, _ = await asyncio.wait(
                    waits,
                    timeout=max(deadline - loop.time(), 0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if left in done:
                    # Handed to the call, not awaited: the session closes under us once
                    # the caller has gone, and the call's teardown waits for the legs.
                    call.spawn(self._cancel(CALLER_HUNG_UP))
                    return TransferResult(Ending.CALLER_LEFT)
                if silent in done:
                    log.warning(
                        "The SIP bridge running the transfer no longer answers; it is given up.",
                        extra={"call_id": call.call_id, "transfer_id": self.transfer_id},
                    )
                    # Handed to the call: a bridge back by now hangs the legs up, and the
                    # caller hears the news without waiting for it (or for its retries).
                    call.spawn(self._cancel(GAVE_UP))
                    return TransferResult(Ending.FAILED, FailureReason.BRIDGE_LOST)
                if not done:
                    await self._cancel(GAVE_UP)
                    return TransferResult(Ending.FAILED, FailureReason.NO_ANSWER)
                if self._verdict is not None and self._verdict in done:
                    await self._on_verdict(self._verdict)
                if next_event in done:
                    event = next_event.result()
                    next_event = asyncio.ensure_future(watch.get())
                    result = await self._on_event(event)
                    if result is not None:
                        return result
        finally:
            for pending in (next_event, left, silent):
                pending.cancel()

    async def _bridge_silence(self, instance: str | None) -> None:
        """Return once the SIP bridge instance running the transfer (any instance, when
        the reply did not name it) has not answered for ``transfer_bridge_silent_s``.

        A crashed bridge publishes nothing, so its transfer's events simply stop. Another
        instance (or the restarted one) fails that transfer with a final event once its
        sweep finds it, which can take long on a loaded bucket; asking the instance itself
        is how the caller is not left waiting in silence, whatever else answers."""
        client = self._call.ports.transfer
        silent_s = self._call.settings.transfer_bridge_silent_s
        interval = silent_s / 3
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        while loop.time() - last_heard < silent_s:
            await asyncio.sleep(interval)
            if await client.bridge_answers(timeout=interval, instance=instance):
                last_heard = loop.time()

    async def _on_event(self, event: TransferStatus) -> TransferResult | None:
        match event:
            case TransferQueued():
                line = queued_line(event)
                if line is not None:
                    self._hold.reminder = f"You're still in line. {STILL_TRYING}"
                    await self._hold.say(line)
            case TransferDialing(attempt=attempt) if attempt > 1:
                self._hold.reminder = STILL_TRYING
                await self._hold.say(TRYING_NEXT)
            case TransferAnswered(attempt=attempt) if self._briefing is not None:
                self._verdict = await self._briefing.human_answered(attempt, event.human_identity)
                self._verdict_attempt = attempt
            case TransferFailed(final=False, attempt=attempt):
                await self._attempt_over(attempt)
            case TransferFailed(final=True):
                return TransferResult(Ending.FAILED, event.reason)
            case TransferConnected():
                return TransferResult(Ending.CONNECTED)
            case TransferCancelled():
                return TransferResult(Ending.CANCELLED)
        return None

    async def _on_verdict(self, pending: asyncio.Future[Verdict]) -> None:
        self._verdict = None
        if pending.cancelled():
            return
        verdict = pending.result()
        attempt = self._verdict_attempt
        if verdict.decision is HumanDecision.ACCEPT:
            # The goodbye comes before the move: the caller never hears the AI after the
            # human is there, and never hears "connecting" before a person said yes.
            await self._hold.end()
            await speak(self._session, GOODBYE, interruptible=False)
            self._accepted_attempt = attempt
        await self._call.ports.transfer.decide(
            ReportHumanDecision(
                call_id=self._call.call_id,
                transfer_id=self.transfer_id,
                attempt=attempt,
                decision=verdict.decision,
                decline_reason=verdict.reason,
            )
        )

    async def _attempt_over(self, attempt: int) -> None:
        if self._briefing is not None:
            await self._briefing.attempt_over(attempt)
        if attempt == self._verdict_attempt:
            self._verdict = None
        if self._accepted_attempt == attempt:
            # The move failed after the goodbye: back on hold while the next one is tried.
            self._accepted_attempt = None
            await self._hold.play()
            await self._hold.say(RETRYING)

    async def _cancel(self, reason: str) -> None:
        call = self._call
        if not await call.ports.transfer.cancel(call.call_id, self.transfer_id, reason):
            log.warning("A transfer could not be cancelled.", extra={"call_id": call.call_id})
