"""Per-turn screening of what the caller said, before any model sees it.

Every caller message goes through here exactly once, whichever agent or task is active
(consent, triage, a specialist, the manager, an intake step): the triggers that act before
any model (safety, an explicit request for a person, "stop recording"), repeated-failure
counting. Everything else is the model's decision, through the agents' tools. It runs at
the head of each agent's ``llm_node`` because that is the one hook both the audio
pipeline and text input (``session.run``) pass through; ``on_user_turn_completed`` is
skipped for text input.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.agents import llm

from switchboard.contracts.consent import ConsentDecision
from switchboard.voice.state import CallState
from switchboard.voice.triggers import EscalationAsk, detect_before_model, revokes_consent


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the screening decided for one caller message, before any model."""

    escalation: EscalationAsk | None = None
    """Escalate now, without asking the model (safety, an explicit request for a person,
    or too many failed turns)."""
    revoke: bool = False
    """The caller withdrew a granted consent: recording must stop now."""


def new_caller_message(chat_ctx: llm.ChatContext, screened: set[str]) -> llm.ChatMessage | None:
    """The caller message this LLM request answers, if it has not been screened yet.

    Requests that follow a tool call (the newest item is a tool output) are not caller
    turns and return ``None``.
    """
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role in ("system", "developer"):
            continue
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            return None if item.id in screened else item
        if isinstance(item, llm.FunctionCallOutput | llm.FunctionCall | llm.ChatMessage):
            return None
    return None


def screen(state: CallState, text: str, *, handles_revocation: bool = True) -> Verdict:
    """Screen one caller message and update the call facts it affects (no I/O: the
    agent acts on the verdict)."""
    state.heard(text)
    state.failures.observe_turn(text)
    revoke = (
        handles_revocation and state.consent is ConsentDecision.GRANTED and revokes_consent(text)
    )
    escalation = detect_before_model(text) or state.failures.escalation()
    return Verdict(escalation=escalation, revoke=revoke)
