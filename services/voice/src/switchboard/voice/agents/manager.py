"""The AI manager: takes over with the history, speaks with its own voice, and has the
authority the specialists lack (a goodwill credit up to a configured limit)."""

from __future__ import annotations

from livekit.agents import llm
from livekit.agents.llm import function_tool

from switchboard.contracts.crm import GrantCredit
from switchboard.contracts.handoff import HandoffContext
from switchboard.voice import telling
from switchboard.voice.agents.base import CallAgent
from switchboard.voice.agents.staff import Staff
from switchboard.voice.authority import money, to_minor
from switchboard.voice.backoffice import BackOfficeRefused, BackOfficeUnavailable
from switchboard.voice.call import Call
from switchboard.voice.cases import case_event

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
        call = self.call
        state = call.state
        limits = call.settings.limits
        authority = limits.credit(to_minor(amount))
        if authority is None:
            state.attempts += 1
            most = money(limits.credit_limit_minor, limits.currency)
            return (
                f"That's more than I can approve. The most I can offer is a {most} credit "
                "today, or I can pass you to a colleague."
            )
        action = GrantCredit(
            call_id=state.call_id,
            amount_minor=to_minor(amount),
            currency=limits.currency,
            agent=self.id,
            authority=authority,
            reason="goodwill",
            caller_number=state.info.caller_number,
        )
        try:
            done = await call.ports.back_office.grant_credit(action)
        except (BackOfficeUnavailable, BackOfficeRefused) as exc:
            state.attempts += 1
            return f"No credit was applied. {telling.unavailable(exc)}"
        await call.ports.events.publish(case_event(action, done))
        applied = done.amount_minor if done.amount_minor is not None else action.amount_minor
        state.collected["goodwill_credit"] = f"{applied / 100:.2f}"
        return telling.confirmed(done, "I've approved a goodwill credit")
