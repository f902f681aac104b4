"""The back office: what the voice agents ask of the customer's systems, and what they did.

Requests on ``sb.crm.*`` are answered by the customer's CRM adapter (NATS user and service
``crm``); the voice worker asks them. Nothing an agent tells a caller about an account,
a price, an order or money comes from anywhere else: with no answer the agent says it
cannot do it now. Money is in minor units (cents) with an ISO 4217 currency, so nothing
is rounded on the way.

Actions (refund, credit, order, ticket) carry a ``request_id`` the adapter keeps, so a
repeated request does the thing once, and the ``Authority`` that allowed the agent to
ask. When the adapter confirms, the worker publishes the matching ``case.*`` event with
the adapter's reference, so a CRM's timeline shows what the caller was promised.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from switchboard.contracts.base import (
    CallId,
    Identifier,
    Message,
    PersonalText,
    PhoneNumber,
    ShortText,
    new_id,
)
from switchboard.contracts.sealed import Sealable

Currency = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z", description="ISO 4217 currency code.")
]
MinorUnits = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=10**12,
        description="An amount in the currency's minor unit (cents for USD).",
    ),
]


class Authority(Message):
    """The configured rule that let an agent take an action, and its limit."""

    rule: Identifier
    """The setting that grants it, e.g. ``manager_credit_limit`` or ``refund_limits.billing``."""
    limit_minor: MinorUnits | None = None
    """The most the rule allows in one action (minor units); none for yes/no rules."""
    currency: Currency | None = None


class InvoiceLine(Message):
    """One line of an invoice as the billing system states it."""

    description: ShortText
    amount_minor: MinorUnits


class Invoice(Message):
    """An invoice as the billing system states it."""

    invoice_id: Identifier
    issued_on: dt.date
    total_minor: MinorUnits
    currency: Currency
    lines: list[InvoiceLine] = msgspec.field(default_factory=list)
    due_on: dt.date | None = None


class LookupAccount(Message):
    """Request (``sb.crm.account.lookup``): the caller's account and latest invoice."""

    call_id: CallId
    caller_number: PhoneNumber | None = None
    """Who is calling, as the carrier gave it; the adapter decides what it matches."""
    account_id: Identifier | None = None


class Account(Message):
    """Reply: the caller's account as the CRM holds it (``not_found`` error when none)."""

    call_id: CallId
    account_id: Identifier
    plan: ShortText = ""
    latest_invoice: Invoice | None = None


class ListCatalog(Message):
    """Request (``sb.crm.catalog.list``): the products and plans on sale by phone."""

    call_id: CallId


class Product(Message):
    """One product or plan on sale."""

    product_id: Identifier
    name: ShortText
    price_minor: MinorUnits
    currency: Currency
    period: ShortText = ""
    """``month`` for a subscription; empty for a one-off purchase."""
    summary: ShortText = ""


class Catalog(Message):
    """Reply: what can be sold on a call, with prices."""

    call_id: CallId
    products: list[Product] = msgspec.field(default_factory=list)


class FindSupportSteps(Message):
    """Request (``sb.crm.support.steps``): the next remote fix for a problem."""

    call_id: CallId
    problem: Identifier
    """A one-word topic (``internet``, ``wifi``, ``password``...)."""
    attempt: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    """1 for the first fix tried on this call, 2 for the next..."""


class SupportSteps(Message):
    """Reply: the steps to try, or none when nothing more can be done remotely."""

    call_id: CallId
    steps: ShortText | None = None
    article_id: Identifier | None = None


class RequestRefund(Message):
    """Request (``sb.crm.refund.request``): ask billing to refund an amount."""

    call_id: CallId
    amount_minor: MinorUnits
    currency: Currency
    agent: Identifier
    authority: Authority
    reason: ShortText = ""
    caller_number: PhoneNumber | None = None
    account_id: Identifier | None = None
    request_id: Identifier = msgspec.field(default_factory=new_id)
    """The adapter does a repeated request id once."""


class GrantCredit(Message):
    """Request (``sb.crm.credit.grant``): put a goodwill credit on the caller's account."""

    call_id: CallId
    amount_minor: MinorUnits
    currency: Currency
    agent: Identifier
    authority: Authority
    reason: ShortText = ""
    caller_number: PhoneNumber | None = None
    account_id: Identifier | None = None
    request_id: Identifier = msgspec.field(default_factory=new_id)


class PlaceOrder(Message):
    """Request (``sb.crm.order.place``): order a product for delivery."""

    call_id: CallId
    product_id: Identifier
    email: PersonalText
    shipping_address: PersonalText
    agent: Identifier
    authority: Authority
    caller_number: PhoneNumber | None = None
    account_id: Identifier | None = None
    request_id: Identifier = msgspec.field(default_factory=new_id)


class OpenTicket(Message):
    """Request (``sb.crm.ticket.open``): a case for people to follow up after the call."""

    call_id: CallId
    topic: Identifier
    agent: Identifier
    summary: PersonalText = ""
    caller_number: PhoneNumber | None = None
    account_id: Identifier | None = None
    request_id: Identifier = msgspec.field(default_factory=new_id)


class ActionConfirmed(Message):
    """Reply to an action: the customer's system did it; ``reference`` is its record.

    A refused action is an error reply (``rejected`` or ``not_found``) instead, with a
    sentence the agent does not read out.
    """

    call_id: CallId
    request_id: Identifier
    reference: Identifier
    """The back office's own reference (refund, credit note, order or ticket number)."""
    amount_minor: MinorUnits | None = None
    """The amount the system applied or charged, when the action has one."""
    currency: Currency | None = None
    detail: ShortText = ""
    """What the system says happened, in words an agent may repeat (e.g. "ships in 3 days")."""


class RefundRequested(Message):
    """Event: billing accepted a refund request during the call."""

    call_id: CallId
    request_id: Identifier
    reference: Identifier
    amount_minor: MinorUnits
    currency: Currency
    agent: Identifier
    authority: Authority


class CreditGranted(Message):
    """Event: a goodwill credit was put on the caller's account during the call."""

    call_id: CallId
    request_id: Identifier
    reference: Identifier
    amount_minor: MinorUnits
    currency: Currency
    agent: Identifier
    authority: Authority


class OrderPlaced(Sealable):
    """Event: an order was placed for the caller during the call; email and address
    travel sealed (``Sealable``)."""

    call_id: CallId
    request_id: Identifier
    reference: Identifier
    product_id: Identifier
    agent: Identifier
    authority: Authority
    amount_minor: MinorUnits | None = None
    currency: Currency | None = None
    email: PersonalText | None = None
    shipping_address: PersonalText | None = None


class TicketOpened(Message):
    """Event: a follow-up ticket was opened for the caller during the call."""

    call_id: CallId
    request_id: Identifier
    reference: Identifier
    topic: Identifier
    agent: Identifier
