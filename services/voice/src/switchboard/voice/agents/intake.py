"""Intake: a TaskGroup that collects an email address, then a shipping address.

The caller can go back and correct an earlier step ("that's wrong, change my email"):
TaskGroup offers the active task an ``out_of_scope`` tool naming the steps already
visited, re-runs the named step and then continues in order. An escalation inside a step
ends that step with the ``EscalationAsk`` as its result; the steps after it end at once,
and ``collect`` returns the ask for the agent that started the intake to act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentTask, ToolError
from livekit.agents.beta.workflows import TaskGroup
from livekit.agents.beta.workflows.task_group import TaskCompletedEvent
from livekit.agents.llm import function_tool
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.voice.agents.base import CallTask, RecordingConsent
from switchboard.voice.call import Call
from switchboard.voice.triggers import EscalationAsk
from switchboard.voice.understanding import find_address, find_email

StepResult = str | EscalationAsk | None
"""What a step found: its value, an escalation that cut it short, or nothing (skipped)."""


@dataclass(frozen=True, slots=True)
class IntakeDetails:
    email: str
    address: str


class IntakeStep(CallTask[StepResult], RecordingConsent):
    """A step that yields one value, or the escalation the caller asked for instead."""

    async def on_escalation(self, ask: EscalationAsk, speech: SpeechHandle | None) -> Any:
        if not self.done():
            self.complete(ask)
        return None


class EmailTask(IntakeStep):
    def __init__(self, call: Call) -> None:
        super().__init__(call, prompt="email")

    async def on_enter(self) -> None:
        if "email" in self.call.state.collected:
            self.session.say("Sure, let's fix the email. What's the right address?")
        else:
            self.session.say("What email address should we send the confirmation to?")

    @function_tool
    async def record_email(self, email: str) -> None:
        """Record the caller's email address as soon as they give it.

        Args:
            email: The address in standard form (spoken "at" and "dot" converted).
        """
        found = find_email(email)
        if found is None:
            raise ToolError(
                "That doesn't sound like a complete email address. Could you say it again?"
            )
        self.call.state.collected["email"] = found
        if not self.done():
            self.complete(found)


class AddressTask(IntakeStep):
    def __init__(self, call: Call) -> None:
        super().__init__(call, prompt="address")

    async def on_enter(self) -> None:
        self.session.say("And what's the shipping address?")

    @function_tool
    async def record_address(self, address: str) -> None:
        """Record the shipping address exactly as the caller said it.

        Args:
            address: Number, street, city and postcode.
        """
        found = find_address(address)
        if found is None:
            raise ToolError(
                "I need the full street address, starting with the house number. "
                "Could you say it again?"
            )
        self.call.state.collected["shipping_address"] = found
        if not self.done():
            self.complete(found)


class Skipped(AgentTask[StepResult]):
    """Stands in for the steps after an escalation: ends at once, says nothing."""

    def __init__(self) -> None:
        super().__init__(instructions="Say nothing.")

    async def on_enter(self) -> None:
        self.complete(None)


class Intake:
    """One run of the intake group; knows whether a step was cut short by an escalation."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self.escalation: EscalationAsk | None = None

    def group(self) -> TaskGroup:
        """The intake group; each step is built fresh when (re)visited."""
        tasks = TaskGroup(summarize_chat_ctx=True, on_task_completed=self._completed)
        tasks.add(
            lambda: self._step(EmailTask),
            id="email",
            description="Collect the email address for the order confirmation",
        )
        tasks.add(
            lambda: self._step(AddressTask),
            id="address",
            description="Collect the shipping address for the order",
        )
        return tasks

    def _step(self, cls: type[EmailTask] | type[AddressTask]) -> AgentTask[StepResult]:
        return Skipped() if self.escalation is not None else cls(self._call)

    async def _completed(self, event: TaskCompletedEvent) -> None:
        if isinstance(event.result, EscalationAsk):
            self.escalation = event.result

    async def run(self) -> IntakeDetails | EscalationAsk | None:
        """The details, the escalation that cut the intake short, or ``None``."""
        result = await self.group()
        if self.escalation is not None:
            return self.escalation
        email = result.task_results.get("email")
        address = result.task_results.get("address")
        if isinstance(email, str) and isinstance(address, str):
            return IntakeDetails(email=email, address=address)
        return None
