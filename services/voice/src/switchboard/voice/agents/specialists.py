"""The specialists: billing, support and sales.

What they tell the caller about bills, fixes, plans and orders comes from the back office
(``backoffice.py``); when it cannot answer they say so and offer a person. None of them
can approve money; that is the manager's authority.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from livekit.agents import RunContext, llm
from livekit.agents.llm import function_tool

from switchboard.contracts.crm import OpenTicket, PlaceOrder, RequestRefund
from switchboard.contracts.handoff import HandoffContext
from switchboard.voice import telling
from switchboard.voice.agents.intake import Intake, IntakeDetails
from switchboard.voice.agents.staff import Staff
from switchboard.voice.agents.triage import Routes
from switchboard.voice.authority import money, to_minor
from switchboard.voice.backoffice import BackOfficeRefused, BackOfficeUnavailable
from switchboard.voice.call import Call
from switchboard.voice.cases import case_event

REFUND_REFUSED: Final = (
    "I'm not able to approve refunds or credits myself, but a manager can. "
    "Would you like me to get a manager?"
)
REFUND_ABOVE_LIMIT: Final = (
    "I can request a refund of up to {limit} myself; for more, a manager can help. "
    "Would you like me to get a manager?"
)
WHICH_REFUND: Final = "How much should the refund be?"
OUT_OF_FIXES: Final = (
    "I've run out of fixes I can do remotely. I can escalate this to someone who can "
    "look deeper, if you like."
)
NO_ORDERS_BY_PHONE: Final = (
    "I can't place orders over the phone. I can put you through to a person, or arrange a callback."
)
Product = Literal["headset", "router", "premium plan", "basic plan"]
Problem = Literal[
    "internet", "wifi", "router", "password", "login", "connection", "error", "general"
]
Failure = BackOfficeUnavailable | BackOfficeRefused


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
            account = await self.call.ports.back_office.account(self.call.state.info)
        except (BackOfficeUnavailable, BackOfficeRefused) as exc:
            self.call.state.attempts += 1
            return telling.account_unavailable(exc)
        return telling.bill(account)

    @function_tool
    async def request_refund(self, amount: float | None = None) -> str:
        """The caller wants money back. Within your configured limit this asks billing for
        the refund; above it, or with no limit, it tells you what to offer instead.

        Args:
            amount: The refund in dollars the caller asked for, if they said.
        """
        call = self.call
        limits = call.settings.limits
        limit = limits.refund_limit(self.id)
        if limit <= 0:
            call.state.attempts += 1
            return REFUND_REFUSED
        if amount is None:
            return WHICH_REFUND
        authority = limits.refund(self.id, to_minor(amount))
        if authority is None:
            call.state.attempts += 1
            return REFUND_ABOVE_LIMIT.format(limit=money(limit, limits.currency))
        info = call.state.info
        action = RequestRefund(
            call_id=info.call_id,
            amount_minor=to_minor(amount),
            currency=limits.currency,
            agent=self.id,
            authority=authority,
            caller_number=info.caller_number,
        )
        try:
            done = await call.ports.back_office.request_refund(action)
        except (BackOfficeUnavailable, BackOfficeRefused) as exc:
            call.state.attempts += 1
            return f"No refund was requested. {telling.unavailable(exc)}"
        await call.ports.events.publish(case_event(action, done))
        return telling.confirmed(done, "I've requested a refund")


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
        call = self.call
        try:
            found = await call.ports.back_office.support_steps(
                call.state.info, problem, self._tries
            )
        except (BackOfficeUnavailable, BackOfficeRefused) as exc:
            call.state.attempts += 1
            return telling.unavailable(exc)
        if found.steps is None:
            call.state.attempts += 1
            return await self._ticket(problem)
        return f"Let's try this: {found.steps}. Did that fix it?"

    async def _ticket(self, problem: str) -> str:
        """Out of remote fixes: a ticket keeps the case open for people after the call."""
        call = self.call
        info = call.state.info
        action = OpenTicket(
            call_id=info.call_id,
            topic=problem,
            agent=self.id,
            summary=" / ".join(call.state.caller_turns[-3:]),
            caller_number=info.caller_number,
        )
        try:
            done = await call.ports.back_office.open_ticket(action)
        except (BackOfficeUnavailable, BackOfficeRefused):
            return OUT_OF_FIXES
        await call.ports.events.publish(case_event(action, done))
        return (
            f"I've run out of fixes I can do remotely, so I've opened ticket {done.reference} "
            "for our engineers. I can also put you through to someone now, if you like."
        )


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
            catalog = await self.call.ports.back_office.catalog(self.call.state.info)
        except (BackOfficeUnavailable, BackOfficeRefused) as exc:
            return telling.unavailable(exc)
        return telling.plans(catalog)

    @function_tool
    async def place_order(self, context: RunContext[Call], product: Product) -> Any:
        """Place an order. It asks the caller for their email address and shipping address
        (they can go back and correct either) and returns the confirmation.

        Args:
            product: What the caller wants to buy.
        """
        authority = self.call.settings.limits.order()
        if authority is None:
            return NO_ORDERS_BY_PHONE
        found = await Intake(self.call).run()
        if found is None:
            return "I couldn't take the order details, so nothing was ordered."
        if not isinstance(found, IntakeDetails):
            return await self.on_escalation(found, context.speech_handle)
        info = self.call.state.info
        action = PlaceOrder(
            call_id=info.call_id,
            product_id=product.replace(" ", "-"),
            email=found.email,
            shipping_address=found.address,
            agent=self.id,
            authority=authority,
            caller_number=info.caller_number,
        )
        try:
            done = await self.call.ports.back_office.place_order(action)
        except (BackOfficeUnavailable, BackOfficeRefused) as exc:
            return f"Nothing was ordered. {telling.unavailable(exc)}"
        await self.call.ports.events.publish(case_event(action, done))
        placed = telling.confirmed(done, f"Your order for the {product} is placed")
        return f"{placed} The confirmation goes to {found.email}, and it ships to {found.address}."
