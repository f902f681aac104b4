"""The briefing agent: talks to the human who answered a warm transfer, in the consult room.

It opens with a line that says nothing about the caller, so a voicemail box hears nothing
personal. On the human's first words it either recognises a voicemail greeting (and
reports it) or speaks the briefing, fixed text built from what the call established
(``transfer/facts.py``). After that the model (or the rules brain) answers the human's
questions from the facts and the conversation, and the human decides through the tools:
``connect_to_caller``, ``decline_transfer``, ``voicemail_detected``. With every model down
the rules brain's reading of the consult room stands in, so a transfer still completes in
an outage. The decision goes to ``decided``; the briefing coordinator reports it to the
bridge. One agent per answered human: each starts with a clean conversation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from livekit.agents import Agent, APIError, FlushSentinel, llm
from livekit.agents.llm import function_tool
from livekit.agents.voice.agent import ModelSettings

from switchboard.contracts.transfer import DeclineReason, HumanDecision
from switchboard.voice import prompts
from switchboard.voice.agents.speech import speak
from switchboard.voice.brain import briefing as rules
from switchboard.voice.transfer.facts import BriefingFacts
from switchboard.voice.understanding.consult import is_voicemail_greeting

OPENER = "Hello, this is the Switchboard assistant with a caller to transfer to you."
CONNECTING = "Thank you. I'm connecting you to the caller now."
DECLINED = "Understood, I'll find someone else. Thank you."
VOICEMAIL_TOOL = "voicemail_detected"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the human decided."""

    decision: HumanDecision
    reason: DeclineReason | None = None


class BriefingAgent(Agent):
    """Briefs one human about the caller and takes their decision."""

    def __init__(
        self, facts: BriefingFacts, attempt: int, decided: Callable[[Verdict], None]
    ) -> None:
        super().__init__(
            instructions=f"{prompts.load('briefing')}\n{facts.notes()}",
            id="briefing",
        )
        self._facts = facts
        self._decided = decided
        self.attempt = attempt
        self.briefed = False
        """The briefing was given (spoken in reply to the human's first words)."""
        self.verdict: Verdict | None = None

    async def on_enter(self) -> None:
        self.session.say(OPENER)

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterator[llm.ChatChunk | str | FlushSentinel]:
        if self.verdict is not None:
            return  # Decided: whatever else is said here no longer matters.
        if not self.briefed:
            if is_voicemail_greeting(_last_human_words(chat_ctx)):
                # Before any model and before anything personal is said.
                yield _call(VOICEMAIL_TOOL)
                return
            self.briefed = True
            yield self._facts.spoken()
            return
        answered = False
        try:
            async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
                answered = True
                yield chunk
        except APIError:
            if answered:
                raise
            # Every model is down: the deterministic reading decides, as in the call itself.
            decided = rules.decide(_last_human_words(chat_ctx), {t.id for t in tools}, chat_ctx)
            yield decided if isinstance(decided, str) else _call(*decided)

    @function_tool
    async def connect_to_caller(self) -> str | None:
        """The colleague agrees to take the call: connect them to the caller now."""
        if not self._heard_briefing():
            # They spoke over it: the acceptance must follow the whole briefing.
            self.briefed = True
            return f"Before I connect you: {self._facts.spoken()}"
        await speak(self.session, CONNECTING, interruptible=False)
        self._decide(Verdict(HumanDecision.ACCEPT))
        return None

    @function_tool
    async def decline_transfer(self, reason: DeclineReason) -> None:
        """The colleague will not take the call.

        Args:
            reason: busy (on another call or task), wrong_team, unavailable (leaving, in a
                meeting), or other.
        """
        await speak(self.session, DECLINED, interruptible=False)
        self._decide(Verdict(HumanDecision.DECLINE, DeclineReason(reason)))

    @function_tool
    async def voicemail_detected(self) -> None:
        """An answering machine or voicemail greeting answered instead of a person. Say
        nothing after calling this."""
        self._decide(Verdict(HumanDecision.VOICEMAIL))

    def hung_up(self) -> None:
        """The human left the consult room before deciding."""
        self._decide(Verdict(HumanDecision.HUNG_UP))

    def _decide(self, verdict: Verdict) -> None:
        if self.verdict is None:
            self.verdict = verdict
            self._decided(verdict)

    def _heard_briefing(self) -> bool:
        spoken = self._facts.spoken()
        return any(
            isinstance(item, llm.ChatMessage)
            and item.role == "assistant"
            and (item.text_content or "").strip() == spoken
            and not item.interrupted
            for item in self.chat_ctx.items
        )


def _last_human_words(chat_ctx: llm.ChatContext) -> str:
    for item in reversed(chat_ctx.items):
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            return item.text_content or ""
    return ""


def _call(name: str, arguments: dict[str, str] | None = None) -> llm.ChatChunk:
    call = llm.FunctionToolCall(
        name=name, arguments=json.dumps(arguments or {}), call_id=f"briefing_{uuid.uuid4().hex}"
    )
    return llm.ChatChunk(
        id=f"briefing-{uuid.uuid4().hex[:12]}",
        delta=llm.ChoiceDelta(role="assistant", tool_calls=[call]),
    )
