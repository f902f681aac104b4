"""What the caller was promised, as ``case.*`` events: one per action the back office
confirmed, with the amount, the agent, the authority it was taken under and the back
office's reference, so a CRM's timeline shows it next to the call."""

from __future__ import annotations

from switchboard.contracts.crm import (
    ActionConfirmed,
    CreditGranted,
    GrantCredit,
    OpenTicket,
    OrderPlaced,
    PlaceOrder,
    RefundRequested,
    RequestRefund,
    TicketOpened,
)

CaseEvent = RefundRequested | CreditGranted | OrderPlaced | TicketOpened


def case_event(
    action: RequestRefund | GrantCredit | PlaceOrder | OpenTicket, done: ActionConfirmed
) -> CaseEvent:
    """The event for a confirmed action; amounts are what the back office applied."""
    ids = {"call_id": action.call_id, "request_id": action.request_id, "reference": done.reference}
    if isinstance(action, RequestRefund):
        return RefundRequested(
            **ids,
            amount_minor=done.amount_minor
            if done.amount_minor is not None
            else action.amount_minor,
            currency=done.currency or action.currency,
            agent=action.agent,
            authority=action.authority,
        )
    if isinstance(action, GrantCredit):
        return CreditGranted(
            **ids,
            amount_minor=done.amount_minor
            if done.amount_minor is not None
            else action.amount_minor,
            currency=done.currency or action.currency,
            agent=action.agent,
            authority=action.authority,
        )
    if isinstance(action, PlaceOrder):
        return OrderPlaced(
            call_id=action.call_id,
            request_id=action.request_id,
            reference=done.reference,
            product_id=action.product_id,
            agent=action.agent,
            authority=action.authority,
            amount_minor=done.amount_minor,
            currency=done.currency,
            email=action.email,
            shipping_address=action.shipping_address,
        )
    return TicketOpened(**ids, topic=action.topic, agent=action.agent)
