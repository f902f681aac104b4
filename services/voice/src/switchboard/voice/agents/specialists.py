"""The specialists: billing, support and sales.

Their tools stand in for the systems a deployment wires in (billing platform, device
diagnostics, order system): they return fixed, realistic answers so whole calls can run
on a fresh machine. None of them can approve money; that is the manager's authority.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from livekit.agents import RunContext, llm
from livekit.agents.llm import function_tool

from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.agents import intake
from switchboard.voice.agents.staff import Staff
from switchboard.voice.agents.triage import Routes
from switchboard.voice.call import Call

LATEST_BILL: Final = (
    "Your latest invoice is $64.20, dated the first of this month: your plan at $49.00 "
    "plus a one-off equipment fee of $15.20."
)
REFUND_REFUSED: Final = (
    "I'm not able to approve refunds or credits myself, but a manager can. "
    "Would you like me to get a manager?"
)
STEPS: Final[dict[str, str]] = {
    "internet": "unplug your router for thirty seconds, plug it back in, and wait two minutes "
    "for the light to turn green",
    "wifi": "forget the network on your device, then reconnect with the password on the "
    "router's label",
    "password": "use 'forgot password' on the sign-in page; the reset link is valid for an hour",
    "general": "restart the device and check that all cables are firmly plugged in",
}
OUT_OF_FIXES: Final = (
    "I've run out of fixes I can do remotely. I can escalate this to someone who can "
    "look deeper, if you like."
)
PLANS: Final = (
    "Basic is $29 a month, Premium is $49 a month with priority support, and our wireless "
    "headset is $59."
)
Product = Literal["headset", "router", "premium plan", "basic plan"]
Problem = Literal[
    "internet", "wifi", "router", "password", "login", "connection", "error", "general"
]


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
        return LATEST_BILL

    @function_tool
    async def request_refund(self) -> str:
        """The caller wants a refund or credit. You cannot approve one; this tells you what
        to offer instead."""
        self.call.attempts += 1
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
        if self._tries > 2:
            self.call.attempts += 1
            return OUT_OF_FIXES
        key = {"router": "internet", "connection": "internet", "login": "password"}.get(
            problem, problem
        )
        steps = STEPS.get(key, STEPS["general"])
        if self._tries == 2:
            steps = STEPS["general"]
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
        return PLANS

    @function_tool
    async def place_order(self, context: RunContext[Call], product: Product) -> Any:
        """Place an order. It asks the caller for their email address and shipping address
        (they can go back and correct either) and returns the confirmation.

        Args:
            product: What the caller wants to buy.
        """
        details = await intake.collect(self.call)
        ask = self.call.pending_escalation
        if ask is not None:
            self.call.pending_escalation = None
            return await self.on_escalation(ask, context.speech_handle)
        if details is None:
            return "I couldn't take the order details, so nothing was ordered."
        return (
            f"Your order for the {product} is placed. The confirmation goes to "
            f"{details.email}, and it ships to {details.address}."
        )
