"""What every agent and task of the call shares: screening, ``escalate`` and speaking.

``Screened`` sits at the head of each agent's ``llm_node``: a caller message is screened
once (see ``screening.py``), and when a deterministic trigger fires the model is not
asked at all: the agent's ``escalate`` tool is called directly with the detected reason.
The tool still goes through the normal tool pipeline, so the turn looks the same whether
the trigger or the model chose it (and ``RunResult`` assertions see it). The agent keeps
what the screening found under the id of the tool call it made, so the tool knows the
exact trigger without any state shared beyond that one call.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar, TypeVar

from livekit.agents import Agent, AgentTask, FlushSentinel, RunContext, llm, tts
from livekit.agents.llm import function_tool
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice.agent import ModelSettings
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.contracts.call import CallOutcome
from switchboard.contracts.consent import ConsentDecision
from switchboard.contracts.escalation import EscalationTrigger
from switchboard.contracts.handoff import HandoffContext
from switchboard.voice import consent_records, handoff, prompts
from switchboard.voice.agents import escalation
from switchboard.voice.agents.speech import speak
from switchboard.voice.agents.staff import Staff
from switchboard.voice.brain.model import NOT_UNDERSTOOD
from switchboard.voice.call import Call
from switchboard.voice.screening import new_caller_message, screen
from switchboard.voice.triggers import CHOICES, EscalationAsk, EscalationChoice, choice

log = logging.getLogger(__name__)

T = TypeVar("T")

GOODBYE = "Thank you for calling. Goodbye!"
RECORDING_STOPPED = "I've stopped recording this call; nothing more of it will be recorded."
NOT_RECORDING = "This call isn't being recorded."
REVOKED_NOTE = (
    "The caller has just withdrawn consent to recording and recording has stopped. "
    "Confirm that in a few words, then answer anything else they said."
)


class Screened(Agent):
    """Mixin for agents and tasks: per-turn screening and the ``escalate`` tool."""

    handles_revocation: ClassVar[bool] = True
    """The consent task answers "don't record" as a consent answer instead."""
    _call: Call
    _forced: dict[str, EscalationAsk]
    """Escalations the screening forced, by the id of the tool call it made."""

    @property
    def call(self) -> Call:
        return self._call

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterator[llm.ChatChunk | str | FlushSentinel]:
        state = self._call.state
        message = new_caller_message(chat_ctx, state.screened)
        if message is not None:
            state.screened.add(message.id)
            text = message.text_content or ""
            verdict = screen(state, text, handles_revocation=self.handles_revocation)
            if verdict.revoke:
                # Stopping is never a compliance risk, so it happens before any model.
                await consent_records.revoke(self._call, text)
                chat_ctx = chat_ctx.copy()
                chat_ctx.add_message(role="system", content=REVOKED_NOTE)
            if verdict.escalation is not None and any(t.id == "escalate" for t in tools):
                tool_call_id = f"screen_{uuid.uuid4().hex[:16]}"
                self._forced[tool_call_id] = verdict.escalation
                yield _forced_escalate(verdict.escalation, tool_call_id)
                return
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            if isinstance(chunk, llm.ChatChunk) and chunk.id.startswith(NOT_UNDERSTOOD):
                # The rules brain could not act on the turn: that is a failed turn too.
                state.failures.observe_not_understood()
            yield chunk

    @function_tool
    async def escalate(self, context: RunContext[Call], reason: EscalationChoice) -> Any:
        """Escalate the call. Use it when the caller asks to speak to a person or to a
        manager or supervisor, when you cannot help after trying, when the caller
        threatens legal action or a complaint to a regulator, or when anyone's safety is
        at risk. Do not use it when the caller only mentions someone ("my account manager
        said...", "Sue from your office"), says they do not need anyone, or asks for a
        department (use the routing tool for that). You choose only the reason; where the
        call goes and any phone number are decided by the system.

        Args:
            reason: caller_wants_person (a human being, a representative, an agent),
                caller_wants_manager (a manager, a supervisor, someone in charge),
                legal_threat, safety, or cannot_help (you tried and cannot resolve it).
        """
        forced = self._forced.pop(context.function_call.call_id, None)
        if forced is None:
            why, wants_human = CHOICES[reason]
            forced = EscalationAsk(why, EscalationTrigger.LLM_TOOL, wants_human)
        ask = forced
        log.info(
            "Escalation requested.",
            extra={
                "call_id": self._call.call_id,
                "agent": self.id,
                "reason": str(ask.reason),
                "trigger": str(ask.trigger),
            },
        )
        return await self.on_escalation(ask, context.speech_handle)

    async def on_escalation(self, ask: EscalationAsk, speech: SpeechHandle | None) -> Any:
        """What this agent or task does with an escalation (a handoff, a transfer...)."""
        raise NotImplementedError


class RecordingConsent(Screened):
    """Mixin for every agent and task after the consent task: the caller may withdraw
    consent to recording at any time."""

    @function_tool
    async def revoke_recording_consent(self) -> str:
        """The caller withdraws consent to this call being recorded ("stop recording",
        "I don't want this recorded anymore", "I take back my consent"). Recording stops at
        once. Not for questions about recording, and not for stopping anything else
        (payments, a service, a subscription)."""
        state = self._call.state
        if state.consent is ConsentDecision.GRANTED:
            await consent_records.revoke(self._call, state.last_caller_text)
        if state.consent is ConsentDecision.REVOKED:
            return RECORDING_STOPPED
        return NOT_RECORDING


class CallAgent(RecordingConsent):
    """A full agent of the call graph (triage, a specialist, the manager)."""

    def __init__(
        self,
        call: Call,
        staff: Staff,
        *,
        agent_id: str,
        prompt: str,
        chat_ctx: llm.ChatContext | None = None,
        context: HandoffContext | None = None,
        tts: NotGivenOr[tts.TTS[Any]] = NOT_GIVEN,
    ) -> None:
        self._call = call
        self._forced = {}
        self._staff = staff
        history = (
            chat_ctx.copy(exclude_instructions=True, exclude_function_call=True)
            if chat_ctx is not None
            else llm.ChatContext.empty()
        )
        if context is not None:
            # The note a real model reads to avoid making the caller repeat themselves.
            history.add_message(role="system", content=handoff.briefing(context))
        super().__init__(
            instructions=prompts.instructions(prompt), id=agent_id, chat_ctx=history, tts=tts
        )

    @property
    def staff(self) -> Staff:
        return self._staff

    async def on_escalation(self, ask: EscalationAsk, speech: SpeechHandle | None) -> Any:
        return await escalation.run(self, self._call, self._staff, ask, speech)

    @function_tool
    async def end_call(self) -> None:
        """End the call when the caller says goodbye or confirms they need nothing else."""
        await speak(self.session, GOODBYE)
        self._call.end(CallOutcome.RESOLVED)


class CallTask(Screened, AgentTask[T]):
    """A sub-dialogue with a result (consent, an intake step, a callback offer)."""

    def __init__(self, call: Call, *, prompt: str) -> None:
        self._call = call
        self._forced = {}
        super().__init__(instructions=prompts.instructions(prompt))


def _forced_escalate(ask: EscalationAsk, tool_call_id: str) -> llm.ChatChunk:
    arguments = json.dumps({"reason": choice(ask)})
    return llm.ChatChunk(
        id=f"screening-{uuid.uuid4().hex[:12]}",
        delta=llm.ChoiceDelta(
            role="assistant",
            tool_calls=[
                llm.FunctionToolCall(name="escalate", arguments=arguments, call_id=tool_call_id)
            ],
        ),
    )
