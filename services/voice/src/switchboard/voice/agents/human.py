"""The last resort: a warm transfer to a human through the sip-bridge, else a callback.

The destinations come from the router's decision (configuration), never from the caller
or a model. The caller goes on hold before the transfer line is spoken, so nothing they
say from then on stops the transfer (``transfer/hold.py``); the human is briefed in the
consult room and decides (``transfer/flow.py``). When no one takes the call the caller
comes off hold and is offered a callback; when the caller hangs up, the transfer is
cancelled and the call is over.
"""

from __future__ import annotations

import logging
from typing import Any

from livekit.agents import Agent, AgentSession
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.contracts.call import CallbackRequested, CallOutcome
from switchboard.contracts.escalation import HandoffDecision
from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.agents.speech import speak
from switchboard.voice.agents.staff import Staff
from switchboard.voice.call import Call
from switchboard.voice.transfer.facts import briefing_facts
from switchboard.voice.transfer.flow import Ending, HumanTransfer
from switchboard.voice.transfer.hold import CallerHold

log = logging.getLogger(__name__)

CALLBACK_BOOKED = "Done. We'll call you back as soon as someone is free. Goodbye!"
CALLBACK_DECLINED = "No problem. You can call us back any time. Goodbye!"


async def transfer(
    agent: Agent,
    call: Call,
    staff: Staff,
    decision: HandoffDecision,
    ctx: HandoffContext,
    speech: SpeechHandle | None,
) -> None:
    """Speak the transfer line, hold, transfer; on failure offer a callback. The call is
    over afterwards (transferred, abandoned by the caller, or a callback settled)."""
    session: AgentSession[Any] = agent.session
    _no_interruptions(speech)
    hold = CallerHold(session, call.state, call.ports.hold_audio, call.settings.hold_reminder_s)
    await hold.begin()
    await speak(session, decision.say, interruptible=False)
    facts = briefing_facts(ctx, call.state.info, decision, call.state.caller_turns, agent.chat_ctx)
    attempt = HumanTransfer(call, session, decision, ctx, facts, hold)
    try:
        result = await attempt.run()
    finally:
        await hold.end()
    log.info(
        "Transfer finished.",
        extra={
            "call_id": call.call_id,
            "ending": result.ending.value,
            "reason": str(result.reason) if result.reason else None,
        },
    )
    if result.ending is Ending.CONNECTED:
        call.end(CallOutcome.TRANSFERRED)
    elif result.ending is Ending.CALLER_LEFT or call.caller_gone:
        call.end(CallOutcome.ABANDONED)
    else:
        why = f"transfer {result.ending.value}: {result.reason or 'cancelled by the bridge'}"
        await offer_callback(agent, call, staff, why, ctx, decision.decision_id)


def _no_interruptions(speech: SpeechHandle | None) -> None:
    """The tool call that leads here must not be cut short by the caller speaking."""
    if speech is None:
        return
    try:
        speech.allow_interruptions = False
    except RuntimeError:
        log.info("The transfer's speech was already interrupted; transferring anyway.")


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
