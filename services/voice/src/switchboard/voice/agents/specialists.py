"""The specialists: billing, support and sales.

What they tell the caller about bills, fixes, plans and orders comes from the back office
(``backoffice.py``); when it cannot answer they say so and offer a person. None of them
can approve money; that is the manager's authority.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from livekit.agents import RunContext, llm
from livekit.agents.llm import function_tool

from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.agents.intake import Intake, IntakeDetails
from switchboard.voice.agents.staff import Staff
from switchboard.voice.agents.triage import Routes
from switchboard.voice.backoffice import BackOfficeUnavailable
from switchboard.voice.call import Call

REFUND_REFUSED: Final = (
    "I'm not able to approve refunds or credits myself, but a manager can. "
    "Would you like me to get a manager?"
)
OUT_OF_FIXES: Final = (
    "I've run out of fixes I can do remotely. I can escalate this to someone who can "
    "look deeper, if you like."
)
UNAVAILABLE: Final = (
    "I can't reach our {system} system right now, so I can't do that for you myself. "
    "I can put you through to a person, or arrange a callback."
)
Product = Literal["headset", "router", "premium plan", "basic plan"]
Problem = Literal[
    "internet", "wifi", "router", "password", "login", "connection", "error", "general"
]


def unavailable(exc: BackOfficeUnavailable) -> str:
    """What the caller hears when a system of record did not answer."""
    return UNAVAILABLE.format(system=exc.system)


class BillingAgent(Routes):
    def __init__(
        self, call: Call, staff: Staff, chat_ctx: llm.ChatContext, context: HandoffContext
    ) -> None:
        super().__init__(
            call, staff, agent_id="billing", prompt="billing", chat_ctx=chat_ctx, context=context
        )

    async def on_enter(self) -> None:
        self.session.say(
            "Hi, you're through to billing. I can explain your latest bill or look into a refund."
        )

    @function_tool
    async def explain_latest_bill(self) -> str:
        """Look up and explain the caller's latest bill."""
        try:
            return await self.call.ports.back_office.latest_bill(self.call.state.info)
        except BackOfficeUnavailable as exc:
            self.call.state.attempts += 1
            return unavailable(exc)

    @function_tool
    async def request_refund(self) -> str:
        """The caller wants a refund or credit. You cannot approve one; this tells you what
        to offer instead."""
        self.call.state.attempts += 1
        return REFUND_REFUSED


class SupportAgent(Routes):
    def __init__(
        self, call: Call, staff: Staff, chat_ctx: llm.ChatContext, context: HandoffContext
    ) -> None:
        super().__init__(
            call, staff, agent_id="support", prompt="support", chat_ctx=chat_ctx, context=context
        )
        self._tries = 0

    async def on_enter(self) -> None:
        self.session.say("Hi, you're through to technical support. What's not working?")

    @function_tool
    async def troubleshoot(self, problem: Problem) -> str:
        """Get the next troubleshooting steps for a problem.

        Args:
            problem: A one-word description of the problem.
        """
        self._tries += 1
        try:
            steps = await self.call.ports.back_office.troubleshooting(problem, self._tries)
        except BackOfficeUnavailable as exc:
            self.call.state.attempts += 1
            return unavailable(exc)
        if steps is None:
            self.call.state.attempts += 1
            return OUT_OF_FIXES
        return f"Let's try this: {steps}. Did that fix it?"


class SalesAgent(Routes):
    def __init__(
        self, call: Call, staff: Staff, chat_ctx: llm.ChatContext, context: HandoffContext
    ) -> None:
        super().__init__(
            call, staff, agent_id="sales", prompt="sales", chat_ctx=chat_ctx, context=context
        )

    async def on_enter(self) -> None:
        self.session.say(
            "Hi, you're through to sales. I can tell you about our plans or place an order."
        )

    @function_tool
    async def quote_plans(self) -> str:
        """Tell the caller our plans and prices."""
        try:
            return await self.call.ports.back_office.plans()
        except BackOfficeUnavailable as exc:
            return unavailable(exc)

    @function_tool
    async def place_order(self, context: RunContext[Call], product: Product) -> Any:
        """Place an order. It asks the caller for their email address and shipping address
        (they can go back and correct either) and returns the confirmation.

        Args:
            product: What the caller wants to buy.
        """
        found = await Intake(self.call).run()
        if found is None:
            return "I couldn't take the order details, so nothing was ordered."
        if not isinstance(found, IntakeDetails):
            return await self.on_escalation(found, context.speech_handle)
        info = self.call.state.info
        try:
            reference = await self.call.ports.back_office.place_order(
                info, product, found.email, found.address
            )
        except BackOfficeUnavailable as exc:
            return f"Nothing was ordered. {unavailable(exc)}"
        return (
            f"Your order for the {product} is placed, reference {reference}. The confirmation "
            f"goes to {found.email}, and it ships to {found.address}."
        )
