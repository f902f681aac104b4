"""Triage: runs consent first, then finds the caller's need and routes to a specialist."""

from __future__ import annotations

import logging
from typing import Final

from livekit.agents import Agent, ToolError, llm
from livekit.agents.llm import function_tool

from switchboard.contracts.handoff import HandoffContext
from switchboard.voice import handoff
from switchboard.voice.agents import escalation
from switchboard.voice.agents.base import CallAgent
from switchboard.voice.agents.consent import ConsentTask
from switchboard.voice.agents.speech import speak
from switchboard.voice.agents.staff import Staff
from switchboard.voice.call import Call
from switchboard.voice.understanding import Department

log = logging.getLogger(__name__)

LABELS: Final[dict[str, str]] = {
    "billing": "our billing team",
    "support": "technical support",
    "sales": "sales",
}


class Routes(CallAgent):
    """Agents that can send the caller to a department (triage and, laterally, specialists)."""

    @function_tool
    async def route_to_department(self, department: Department) -> Agent | str:
        """Send the caller to the department that handles their need.

        Args:
            department: billing (bills, charges, refunds, payments), support (anything broken
                or not working) or sales (buying, ordering, upgrading, prices).
        """
        if department == self.id:
            return f"You're already speaking with {LABELS[department]}."
        call = self.call
        call.state.intent = department
        ctx = handoff.context(call.state, from_agent=self.id)
        await speak(self.session, f"I'll put you through to {LABELS[department]}.")
        nxt = self.staff.specialist(department, self.chat_ctx, ctx)
        return await escalation.hand_off(call, self, nxt, ctx, "routing")


class TriageAgent(Routes):
    """The entry agent of every call."""

    def __init__(
        self,
        call: Call,
        staff: Staff,
        chat_ctx: llm.ChatContext | None = None,
        context: HandoffContext | None = None,
    ) -> None:
        super().__init__(
            call, staff, agent_id="triage", prompt="triage", chat_ctx=chat_ctx, context=context
        )

    async def on_enter(self) -> None:
        call = self.call
        state = call.state
        if state.consent is None and state.policy is not None:
            try:
                outcome = await ConsentTask(call, state.policy)
            except ToolError:
                # The session closed (caller hung up) before consent was settled.
                log.info("Call ended during consent.", extra={"call_id": call.call_id})
                return
            if outcome.escalation is not None:
                # Asked during consent (e.g. "I want a manager" as the first sentence).
                nxt = await escalation.run(self, call, self.staff, outcome.escalation, None)
                if nxt is not None:
                    self.session.update_agent(nxt)
                return
        if not state.ended:
            self.session.generate_reply()
