"""The AI manager: takes over with the history, speaks with its own voice, and has the
authority the specialists lack (a goodwill credit up to a configured limit)."""

from __future__ import annotations

from livekit.agents import llm
from livekit.agents.llm import function_tool

from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.agents.base import CallAgent
from switchboard.voice.agents.specialists import unavailable
from switchboard.voice.agents.staff import Staff
from switchboard.voice.backoffice import BackOfficeUnavailable
from switchboard.voice.call import Call

GREETING = (
    "Hello, this is the duty manager. I've read your conversation so far, so you don't "
    "need to repeat anything. How can I help?"
)


class ManagerAgent(CallAgent):
    def __init__(
        self, call: Call, staff: Staff, chat_ctx: llm.ChatContext, context: HandoffContext
    ) -> None:
        super().__init__(
            call,
            staff,
            agent_id="manager",
            prompt="manager",
            chat_ctx=chat_ctx,
            context=context,
            tts=call.voices.manager,
        )

    async def on_enter(self) -> None:
        self.session.say(GREETING)

    @function_tool
    async def approve_goodwill_credit(self, amount: float) -> str:
        """Approve a goodwill credit on the caller's account, within your authority.

        Args:
            amount: The credit in dollars that the caller asked for.
        """
        state = self.call.state
        limit = self.call.settings.manager_credit_limit
        if not 0 < amount <= limit:
            state.attempts += 1
            return (
                f"That's more than I can approve. The most I can offer is a ${limit:.2f} credit "
                "today, or I can pass you to a colleague."
            )
        try:
            reference = await self.call.ports.back_office.grant_credit(state.info, amount)
        except BackOfficeUnavailable as exc:
            state.attempts += 1
            return f"No credit was applied. {unavailable(exc)}"
        state.collected["goodwill_credit"] = f"{amount:.2f}"
        return (
            f"I've approved a goodwill credit of ${amount:.2f}, reference {reference}. "
            "It will show on your next bill."
        )
