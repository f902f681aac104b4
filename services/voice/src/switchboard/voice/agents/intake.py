"""Intake: a TaskGroup that collects an email address, then a shipping address.

The caller can go back and correct an earlier step ("that's wrong, change my email"):
TaskGroup offers the active task an ``out_of_scope`` tool naming the steps already
visited, re-runs the named step and then continues in order. An escalation inside a step
is parked on the call; the remaining steps end at once and the caller of ``collect``
acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit.agents import ToolError
from livekit.agents.beta.workflows import TaskGroup
from livekit.agents.llm import function_tool
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.voice.agents.base import CallTask
from switchboard.voice.call import Call
from switchboard.voice.triggers import EscalationAsk
from switchboard.voice.understanding import find_address, find_email


@dataclass(frozen=True, slots=True)
class IntakeDetails:
    email: str
    address: str


class IntakeStep(CallTask[str | None]):
    """A step that yields one value, or ``None`` when an escalation cut it short."""

    async def on_escalation(self, ask: EscalationAsk, speech: SpeechHandle | None) -> Any:
        self.call.pending_escalation = ask
        if not self.done():
            self.complete(None)
        return None

    def _skip_if_escalating(self) -> bool:
        if self.call.pending_escalation is None:
            return False
        if not self.done():
            self.complete(None)
        return True


class EmailTask(IntakeStep):
    def __init__(self, call: Call) -> None:
        super().__init__(call, prompt="email")

    async def on_enter(self) -> None:
        if self._skip_if_escalating():
            return
        if "email" in self.call.collected:
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
        self.call.collected["email"] = found
        if not self.done():
            self.complete(found)


class AddressTask(IntakeStep):
    def __init__(self, call: Call) -> None:
        super().__init__(call, prompt="address")

    async def on_enter(self) -> None:
        if self._skip_if_escalating():
            return
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
        self.call.collected["shipping_address"] = found
        if not self.done():
            self.complete(found)


def group(call: Call) -> TaskGroup:
    """The intake group; each step is built fresh when (re)visited."""
    tasks = TaskGroup(summarize_chat_ctx=True)
    tasks.add(
        lambda: EmailTask(call),
        id="email",
        description="Collect the email address for the order confirmation",
    )
    tasks.add(
        lambda: AddressTask(call),
        id="address",
        description="Collect the shipping address for the order",
    )
    return tasks


async def collect(call: Call) -> IntakeDetails | None:
    """Run the intake; ``None`` when it was cut short (an escalation is then pending)."""
    result = await group(call)
    email = result.task_results.get("email")
    address = result.task_results.get("address")
    if isinstance(email, str) and isinstance(address, str):
        return IntakeDetails(email=email, address=address)
    return None
