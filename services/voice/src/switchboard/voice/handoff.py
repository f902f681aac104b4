"""The handoff context: what the next agent, the human and the CRM get about the call
(the human hears it through the briefing, ``transfer/facts.py``).

The summary is built deterministically from the call state and the caller's own recent
words, so it exists even when no model is available. It is personal data (the contracts
mark it so); it travels in events and to the human, never into logs.
"""

from __future__ import annotations

from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.state import CallState

SUMMARY_TURNS = 3
SUMMARY_MAX = 600


def summary(call: CallState) -> str:
    """One paragraph: the need, what was tried, and the caller's last words."""
    parts: list[str] = []
    if call.intent:
        parts.append(f"The caller called about {call.intent}.")
    if call.attempts:
        parts.append(f"The AI could not resolve it after {call.attempts} attempt(s).")
    if call.collected:
        parts.append("Collected: " + ", ".join(sorted(call.collected)) + ".")
    recent = [t.strip() for t in call.caller_turns[-SUMMARY_TURNS:] if t.strip()]
    if recent:
        parts.append("Caller said: " + " / ".join(f'"{t}"' for t in recent))
    text = " ".join(parts) or "The caller has just been connected."
    return text[:SUMMARY_MAX]


def context(call: CallState, from_agent: str) -> HandoffContext:
    """The versioned handoff context for the current state of ``call``."""
    return HandoffContext(
        summary=summary(call),
        intent=call.intent,
        collected=dict(call.collected),
        consent=call.consent,
        consent_receipt_sequence=call.consent_sequence,
        attempts=call.attempts,
        language=call.info.language,
        from_agent=from_agent,
    )


def briefing(ctx: HandoffContext) -> str:
    """The note a receiving AI agent finds at the top of its context."""
    collected = "; ".join(f"{k}: {v}" for k, v in sorted(ctx.collected.items())) or "none"
    return (
        f"Handoff from {ctx.from_agent or 'another agent'} (context v{ctx.version}). "
        f"Intent: {ctx.intent or 'unknown'}. Attempts so far: {ctx.attempts}. "
        f"Consent: {ctx.consent or 'not recorded'}. Collected fields: {collected}. "
        f"Summary: {ctx.summary}"
    )
