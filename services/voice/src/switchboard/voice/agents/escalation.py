"""Escalation: ask the router, then act on its decision.

The decision's target picks the next step: the AI manager or another AI specialist (a
handoff with the history and the handoff context carried), a human queue (a warm
transfer through the sip-bridge, see ``human.py``; cold where the rules ask), a voicemail
box (always cold), or a callback. Whatever happens the caller hears what comes next and
is never left without a next step.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from livekit.agents import Agent, AgentSession
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.contracts.call import AgentHandedOff
from switchboard.contracts.escalation import (
    EscalationReason,
    EscalationRequest,
    HandoffDecision,
    HandoffTarget,
)
from switchboard.contracts.handoff import HandoffContext
from switchboard.voice import handoff
from switchboard.voice.agents import human
from switchboard.voice.agents.speech import speak
from switchboard.voice.agents.staff import Staff
from switchboard.voice.call import Call
from switchboard.voice.triggers import EscalationAsk
from switchboard.voice.understanding import DEPARTMENTS

log = logging.getLogger(__name__)

MANAGER_ID = "manager"
TRIAGE_ID = "triage"


async def run(
    agent: Agent, call: Call, staff: Staff, ask: EscalationAsk, speech: SpeechHandle | None
) -> Agent | None:
    """Escalate from ``agent``; returns the agent to hand off to, or ``None`` when the call
    continues with ``agent`` or is over (transferred, callback arranged)."""
    ctx = handoff.context(call.state, from_agent=agent.id)
    request = EscalationRequest(
        call_id=call.call_id,
        reason=_reason(agent.id, ask),
        trigger=ask.trigger,
        current_agent=agent.id,
        intent=call.state.intent,
        language=call.state.info.language,
        attempts=call.state.attempts,
        wants_human=ask.wants_human,
        context=ctx,
    )
    decision = await call.ports.router.decide(request)
    if decision.fallback:
        # The router never saw this decision, so the worker states it on the bus itself.
        await call.ports.events.publish(decision)
    log.info(
        "Handoff decided.",
        extra={
            "call_id": call.call_id,
            "target": str(decision.target),
            "fallback": decision.fallback,
            "rules": [r.rule_id for r in decision.rules_fired],
        },
    )
    call.state.failures.reset()
    return await act(agent, call, staff, decision, ctx, speech)


async def act(
    agent: Agent,
    call: Call,
    staff: Staff,
    decision: HandoffDecision,
    ctx: HandoffContext,
    speech: SpeechHandle | None,
) -> Agent | None:
    session: AgentSession[Any] = agent.session
    target = decision.target
    if target is HandoffTarget.AI_MANAGER and agent.id == MANAGER_ID:
        # The manager is the last AI step; the router sending it to itself means "no AI
        # can help", so a person (if there is somewhere to dial) or a callback is next.
        target = HandoffTarget.HUMAN_QUEUE if decision.destinations else HandoffTarget.CALLBACK
    if target is HandoffTarget.AI_MANAGER:
        await speak(session, decision.say)
        manager = staff.manager(agent.chat_ctx, ctx)
        return await hand_off(call, agent, manager, ctx, "escalation", decision.decision_id)
    if target is HandoffTarget.AI_SPECIALIST:
        nxt = _specialist(agent, call, staff, ctx, decision.agent)
        await speak(session, decision.say)
        if nxt is None:
            return None
        return await hand_off(call, agent, nxt, ctx, "escalation", decision.decision_id)
    if target in (HandoffTarget.HUMAN_QUEUE, HandoffTarget.VOICEMAIL) and decision.destinations:
        # The transfer speaks the router's line itself, once the caller is on hold.
        await human.transfer(
            agent, call, staff, msgspec.structs.replace(decision, target=target), ctx, speech
        )
        return None
    await speak(session, decision.say)
    await human.offer_callback(
        agent, call, staff, f"router target {target}", ctx, decision.decision_id
    )
    return None


async def hand_off(
    call: Call,
    old: Agent,
    new: Agent,
    ctx: HandoffContext,
    reason: str,
    decision_id: str | None = None,
) -> Agent:
    """Publish ``AgentHandedOff`` and return ``new`` for the caller to switch to."""
    await call.ports.events.publish(
        AgentHandedOff(
            call_id=call.call_id,
            from_agent=old.id,
            to_agent=new.id,
            reason=reason,
            context=ctx,
            decision_id=decision_id,
        )
    )
    return new


def _specialist(
    agent: Agent, call: Call, staff: Staff, ctx: HandoffContext, named: str | None
) -> Agent | None:
    """The specialist the router named, else the one for the caller's intent, else triage."""
    for department in DEPARTMENTS:
        if (named or call.state.intent) == department and agent.id != department:
            return staff.specialist(department, agent.chat_ctx, ctx)
    if agent.id != TRIAGE_ID:
        return staff.triage(agent.chat_ctx, ctx)
    return None


def _reason(agent_id: str, ask: EscalationAsk) -> EscalationReason:
    """The manager giving up is its own reason, so the router can send it to people."""
    if agent_id == MANAGER_ID and ask.reason is EscalationReason.AGENT_CANNOT_HELP:
        return EscalationReason.MANAGER_REQUEST
    return ask.reason
