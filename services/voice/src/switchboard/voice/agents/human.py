"""The last resort: a warm transfer to a human through the sip-bridge, else a callback.

The destinations come from the router's decision (configuration), never from the caller
or a model. The human hears a whisper built from the handoff context. While the phones
ring the caller can interrupt; the transfer is then cancelled and the agent carries on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from livekit.agents import Agent, AgentSession
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.contracts.call import CallbackRequested, CallOutcome
from switchboard.contracts.escalation import HandoffDecision
from switchboard.contracts.handoff import HandoffContext
from switchboard.contracts.transfer import (
    FailureReason,
    PlaceTransfer,
    TransferAnswered,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferMode,
    TransferRejected,
)
from switchboard.voice import handoff
from switchboard.voice.agents.speech import speak
from switchboard.voice.agents.staff import Staff
from switchboard.voice.call import Call
from switchboard.voice.clients.transfer import TransferStatus, TransferWatch

log = logging.getLogger(__name__)

CONNECTING = "Someone from our team has picked up. I'm connecting you now. Thank you for waiting."
CONNECTING_VOICEMAIL = "I'm putting you through to voicemail now. Please leave your message."
TRYING_NEXT = "That line didn't pick up. I'm trying another colleague."
CANCELLED = "All right, I've stopped the transfer. How else can I help?"
CALLBACK_BOOKED = "Done. We'll call you back as soon as someone is free. Goodbye!"
CALLBACK_DECLINED = "No problem. You can call us back any time. Goodbye!"


@dataclass(frozen=True, slots=True)
class TransferResult:
    answered: bool
    reason: FailureReason | None = None
    cancelled_by_caller: bool = False


async def transfer(
    agent: Agent,
    call: Call,
    staff: Staff,
    decision: HandoffDecision,
    ctx: HandoffContext,
    speech: SpeechHandle | None,
    *,
    to_voicemail: bool = False,
) -> None:
    """Transfer the caller; on failure offer a callback. Ends the call unless cancelled."""
    session: AgentSession[Any] = agent.session
    result = await place_and_follow(session, call, decision, ctx, speech)
    if result.answered:
        await speak(session, CONNECTING_VOICEMAIL if to_voicemail else CONNECTING)
        call.end(CallOutcome.TRANSFERRED)
    elif result.cancelled_by_caller:
        await speak(session, CANCELLED)
    else:
        await offer_callback(
            agent, call, staff, f"transfer failed: {result.reason}", ctx, decision.decision_id
        )


async def place_and_follow(
    session: AgentSession[Any],
    call: Call,
    decision: HandoffDecision,
    ctx: HandoffContext,
    speech: SpeechHandle | None,
) -> TransferResult:
    """Place the transfer and follow its events until answered, failed or interrupted."""
    client = call.ports.transfer
    command = PlaceTransfer(
        call_id=call.call_id,
        room=call.state.info.room,
        caller_identity=call.state.info.caller_identity,
        destinations=decision.destinations[:10],
        mode=TransferMode.WARM,
        whisper=handoff.whisper(ctx),
        context=ctx,
    )
    async with client.watch(call.call_id, command.transfer_id) as watch:
        reply = await client.place(command)
        if isinstance(reply, TransferRejected):
            log.warning(
                "Transfer rejected before dialling.",
                extra={"call_id": call.call_id, "reason": str(reply.reason)},
            )
            return TransferResult(answered=False, reason=reply.reason)
        result = await _follow(session, call, watch, speech, command.transfer_id)
    log.info(
        "Transfer finished.",
        extra={
            "call_id": call.call_id,
            "answered": result.answered,
            "reason": str(result.reason) if result.reason else None,
        },
    )
    return result


async def _follow(
    session: AgentSession[Any],
    call: Call,
    watch: TransferWatch,
    speech: SpeechHandle | None,
    transfer_id: str,
) -> TransferResult:
    loop = asyncio.get_running_loop()
    overall = loop.time() + call.settings.transfer_answer_timeout_s
    deadline = overall
    answered = False
    while True:
        remaining = deadline - loop.time()
        try:
            event = await _next(watch, speech, max(remaining, 0.0))
        except TimeoutError:
            if answered:
                return TransferResult(answered=True)
            await call.ports.transfer.cancel(call.call_id, transfer_id, "no answer in time")
            return TransferResult(answered=False, reason=FailureReason.NO_ANSWER)
        if event is None:
            await call.ports.transfer.cancel(call.call_id, transfer_id, "cancelled by caller")
            return TransferResult(answered=False, cancelled_by_caller=True)
        if isinstance(event, TransferConnected):
            return TransferResult(answered=True)
        if isinstance(event, TransferAnswered) and not answered:
            # Wait a little for "connected" so the bridge, not us, closes the loop.
            answered = True
            deadline = min(deadline, loop.time() + call.settings.transfer_connect_grace_s)
        elif isinstance(event, TransferFailed):
            if event.final:
                return TransferResult(answered=False, reason=event.reason)
            # An answered attempt can still fail (voicemail, hang-up while briefed); the
            # bridge moves on to the next destination.
            answered, deadline = False, overall
        elif isinstance(event, TransferDialing) and event.attempt > 1:
            # Said when the bridge really dials again, not on a failure that may be the last.
            await speak(session, TRYING_NEXT)
        elif isinstance(event, TransferCancelled):
            return TransferResult(answered=False, reason=None)


async def _next(
    watch: TransferWatch, speech: SpeechHandle | None, timeout: float
) -> TransferStatus | None:
    """The next status event, or ``None`` if the caller interrupted while waiting."""
    if speech is None or not speech.allow_interruptions:
        return await watch.next(timeout)
    task = asyncio.ensure_future(watch.next(timeout))
    await speech.wait_if_not_interrupted([task])
    if not task.done():
        task.cancel()
        return None
    return task.result()


async def offer_callback(
    agent: Agent,
    call: Call,
    staff: Staff,
    reason: str,
    ctx: HandoffContext,
    decision_id: str | None = None,
) -> None:
    """Ask whether the caller wants a callback; publish it if so. Ends the call."""
    session: AgentSession[Any] = agent.session
    accepted = await staff.callback_offer()
    if accepted:
        await call.ports.events.publish(
            CallbackRequested(
                call_id=call.call_id,
                reason=reason[:512],
                number=call.state.info.caller_number,
                context=ctx,
                decision_id=decision_id,
            )
        )
        await speak(session, CALLBACK_BOOKED)
        call.end(CallOutcome.CALLBACK)
    else:
        await speak(session, CALLBACK_DECLINED)
        call.end(CallOutcome.ABANDONED)
