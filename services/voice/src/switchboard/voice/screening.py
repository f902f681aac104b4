"""Per-turn screening of what the caller said, before any model sees it.

Every caller message goes through here exactly once, whichever agent or task is active
(consent, triage, a specialist, the manager, an intake step): deterministic escalation
triggers, repeated-failure counting and consent revocation. It runs at the head of each
agent's ``llm_node`` because that is the one hook both the audio pipeline and text input
(``session.run``) pass through; ``on_user_turn_completed`` is skipped for text input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from livekit.agents import llm

from switchboard.contracts.consent import ConsentDecision
from switchboard.voice.state import CallState
from switchboard.voice.triggers import REVOKE, EscalationAsk, detect_escalation, revokes_consent
from switchboard.voice.understanding import normalise

REVOKED_ACK = "Understood. I've stopped recording this call and noted that you withdrew consent."
NOT_RECORDING_ACK = "Understood. This call isn't being recorded."
_MORE_WORDS = 3
"""Words left after the revocation phrase that make it worth answering the rest too."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the screening decided for one caller message."""

    escalation: EscalationAsk | None = None
    acknowledgement: str | None = None
    """Said before any reply (e.g. confirming that recording stopped)."""
    reply_needed: bool = True
    """False when the acknowledgement is the whole answer."""
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
    ack: str | None = None
    reply_needed = True
    revoke = False
    if handles_revocation and revokes_consent(text):
        revoke = state.consent is ConsentDecision.GRANTED
        ack = REVOKED_ACK if revoke else NOT_RECORDING_ACK
        reply_needed = _has_more_to_say(text)
    escalation = detect_escalation(text) or state.failures.escalation()
    return Verdict(
        escalation=escalation, acknowledgement=ack, reply_needed=reply_needed, revoke=revoke
    )


def _has_more_to_say(text: str) -> bool:
    rest = REVOKE.sub(" ", normalise(text))
    words = re.findall(r"[a-z']+", rest)
    fillers = {"please", "and", "the", "now", "thanks", "thank", "you", "ok", "okay", "can"}
    return len([w for w in words if w not in fillers]) > _MORE_WORDS
