"""What the human hears about the caller in a warm transfer, built only from what the call
knows: the handoff context, who is calling, the router's decision and the conversation.

The spoken briefing is fixed text, never a model's paraphrase, so it says nothing the call
did not establish; the same facts (and the conversation) are the briefing agent's notes for
answering the human's questions. Personal data: it is spoken in the consult room and put in
the briefing agent's instructions, never logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from livekit.agents import llm

from switchboard.contracts.consent import ConsentDecision
from switchboard.contracts.escalation import HandoffDecision
from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.state import CallInfo

BRIEFING_START = "Here's the caller."
"""How the spoken briefing starts (reports and tests find it by this)."""
FACTS_HEADING = "## Facts about the caller"
CONVERSATION_HEADING = "## Conversation with the caller"
CONVERSATION_LINES = 30

_LANGUAGES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German"}


@dataclass(frozen=True, slots=True)
class BriefingFacts:
    """Everything the briefing may say about one caller."""

    intent: str | None = None
    caller_number: str | None = None
    summary: str = ""
    collected: dict[str, str] = field(default_factory=dict)
    consent: ConsentDecision | None = None
    attempts: int = 0
    language: str = "en"
    queue: str | None = None
    last_words: str = ""
    conversation: tuple[tuple[str, str], ...] = ()
    """(``Caller`` or ``Assistant``, text), oldest first."""

    def spoken(self) -> str:
        """The briefing, said to the human once they have spoken (so never to a machine)."""
        parts = [BRIEFING_START, self._who()]
        if self.attempts:
            parts.append(
                f"Our assistant tried {self.attempts} time{'s' if self.attempts > 1 else ''} "
                "and could not resolve it."
            )
        if self.collected:
            details = "; ".join(f"{_label(k)}: {v}" for k, v in sorted(self.collected.items()))
            parts.append(f"They gave: {details}.")
        if self.last_words:
            parts.append(f'In their words: "{self.last_words}"')
        parts.append(self._recording())
        parts.append(f"They speak {_LANGUAGES.get(self.language, self.language)}.")
        parts.append("Will you take the call?")
        return " ".join(parts)

    def notes(self) -> str:
        """The facts and the conversation, as the briefing agent's reference."""
        facts = [
            ("calling from", self.caller_number or "not known"),
            ("about", self.intent or "not classified"),
            ("summary", self.summary or "none"),
            *((_label(k), v) for k, v in sorted(self.collected.items())),
            ("recording", self._recording()),
            ("language", _LANGUAGES.get(self.language, self.language)),
            ("what the assistant tried", f"{self.attempts} unsuccessful attempt(s)"),
            ("what they said last", self.last_words or "nothing yet"),
            ("queue", self.queue or "none"),
        ]
        lines = [FACTS_HEADING, *(f"- {k}: {v}" for k, v in facts), "", CONVERSATION_HEADING]
        lines += [f"{who}: {text}" for who, text in self.conversation[-CONVERSATION_LINES:]]
        return "\n".join(lines)

    def _who(self) -> str:
        about = f"about {self.intent}" if self.intent else "with a request we could not classify"
        number = f" from {self.caller_number}" if self.caller_number else ""
        return f"They're calling{number} {about}."

    def _recording(self) -> str:
        match self.consent:
            case ConsentDecision.GRANTED:
                return "They agreed to recording, so this call is recorded, your part included."
            case ConsentDecision.REVOKED:
                return "They withdrew consent to recording, so nothing more is recorded."
            case _:
                return "They did not agree to recording, so this call is not recorded."


def briefing_facts(
    ctx: HandoffContext,
    info: CallInfo,
    decision: HandoffDecision,
    caller_turns: Sequence[str],
    chat_ctx: llm.ChatContext | None,
) -> BriefingFacts:
    """The facts of one call at the moment it is handed to a person."""
    recent = [t.strip() for t in caller_turns if t.strip()]
    return BriefingFacts(
        intent=ctx.intent,
        caller_number=info.caller_number,
        summary=ctx.summary,
        collected=dict(ctx.collected),
        consent=ctx.consent,
        attempts=ctx.attempts,
        language=ctx.language,
        queue=decision.queue,
        last_words=recent[-1] if recent else "",
        conversation=conversation(chat_ctx),
    )


def conversation(chat_ctx: llm.ChatContext | None) -> tuple[tuple[str, str], ...]:
    """The caller's and the assistant's lines, as WarmTransferTask gives them to its agent."""
    if chat_ctx is None:
        return ()
    out: list[tuple[str, str]] = []
    for item in chat_ctx.items:
        if isinstance(item, llm.ChatMessage) and item.role in ("user", "assistant"):
            text = (item.text_content or "").strip()
            if text:
                out.append(("Caller" if item.role == "user" else "Assistant", text))
    return tuple(out)


def _label(key: str) -> str:
    return key.replace("_", " ")
