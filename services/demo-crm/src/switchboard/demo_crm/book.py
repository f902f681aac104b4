"""The demo CRM's records and rules: accounts, invoices, products, support articles, and
the refunds, credits, orders and tickets taken on calls. Pure: no NATS.

Each action is kept by its ``request_id``, so a repeated request returns the first
answer and does nothing twice, as a real system of record must.
"""

from __future__ import annotations

import datetime as dt
import itertools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import msgspec

from switchboard.contracts.crm import (
    Account,
    ActionConfirmed,
    Catalog,
    FindSupportSteps,
    GrantCredit,
    Invoice,
    InvoiceLine,
    LookupAccount,
    OpenTicket,
    PlaceOrder,
    Product,
    RequestRefund,
    SupportSteps,
)
from switchboard.contracts.errors import ErrorCode


class BookError(ValueError):
    """The data file is missing or does not match the format."""


class Refusal(Exception):
    """The CRM says no; ``code`` travels back as the typed error reply."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Line(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    description: str
    amount_minor: int


class _Invoice(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    invoice_id: str
    issued_on: dt.date
    lines: list[_Line]
    due_on: dt.date | None = None


class _Account(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    account_id: str
    numbers: list[str]
    plan: str = ""
    latest_invoice: _Invoice | None = None


class _Product(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    product_id: str
    name: str
    price_minor: int
    period: str = ""
    summary: str = ""


class _Support(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    steps: dict[str, list[str]]
    same_as: dict[str, str] = msgspec.field(default_factory=dict)


class _Policy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    credit_note: str = ""
    refund_note: str = ""
    order_note: str = ""


class Records(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The data file."""

    currency: str
    accounts: list[_Account]
    products: list[_Product]
    support: _Support
    policy: _Policy = msgspec.field(default_factory=_Policy)


def load_records(path: str | Path | None = None) -> Records:
    """The data file at ``path``, or the packaged demo data."""
    try:
        if path:
            text = Path(path).read_text("utf-8")
        else:
            text = (
                resources.files("switchboard.demo_crm")
                .joinpath("data", "demo_crm.toml")
                .read_text("utf-8")
            )
        return msgspec.convert(tomllib.loads(text), Records)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise BookError(
            f"Cannot read the demo CRM data file {path or '(packaged)'}: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class Taken:
    """An action taken on a call, as the CRM keeps it."""

    kind: str
    call_id: str
    reference: str
    amount_minor: int | None = None
    detail: str = ""


@dataclass
class Book:
    """Answers look-ups from the records and takes actions, once per request id."""

    records: Records
    taken: dict[str, tuple[Taken, ActionConfirmed]] = field(default_factory=dict)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def account(self, query: LookupAccount) -> Account:
        found = self._find(query.caller_number, query.account_id)
        invoice = found.latest_invoice
        return Account(
            call_id=query.call_id,
            account_id=found.account_id,
            plan=found.plan,
            latest_invoice=None if invoice is None else self._invoice(invoice),
        )

    def catalog(self, call_id: str) -> Catalog:
        return Catalog(
            call_id=call_id,
            products=[
                Product(
                    product_id=p.product_id,
                    name=p.name,
                    price_minor=p.price_minor,
                    currency=self.records.currency,
                    period=p.period,
                    summary=p.summary,
                )
                for p in self.records.products
            ],
        )

    def support_steps(self, query: FindSupportSteps) -> SupportSteps:
        support = self.records.support
        topic = support.same_as.get(query.problem, query.problem)
        steps = support.steps.get(topic, support.steps.get("general", []))
        if query.attempt > len(steps):
            return SupportSteps(call_id=query.call_id)
        return SupportSteps(
            call_id=query.call_id,
            steps=steps[query.attempt - 1],
            article_id=f"KB-{topic}-{query.attempt}",
        )

    def refund(self, request: RequestRefund) -> ActionConfirmed:
        return self._once(request.request_id, lambda: self._money("refund", "RF", request))

    def credit(self, request: GrantCredit) -> ActionConfirmed:
        return self._once(request.request_id, lambda: self._money("credit", "CR", request))

    def order(self, request: PlaceOrder) -> ActionConfirmed:
        def place() -> tuple[Taken, ActionConfirmed]:
            product = next(
                (p for p in self.records.products if p.product_id == request.product_id), None
            )
            if product is None:
                raise Refusal(ErrorCode.REJECTED, "That product is not on sale by phone.")
            taken = Taken("order", request.call_id, self._ref("ORD"), product.price_minor)
            return taken, self._confirm(request, taken, self.records.policy.order_note)

        return self._once(request.request_id, place)

    def ticket(self, request: OpenTicket) -> ActionConfirmed:
        def open_() -> tuple[Taken, ActionConfirmed]:
            taken = Taken("ticket", request.call_id, self._ref("TCK"), detail=request.topic)
            return taken, self._confirm(request, taken, "")

        return self._once(request.request_id, open_)

    def _money(
        self, kind: str, prefix: str, request: RequestRefund | GrantCredit
    ) -> tuple[Taken, ActionConfirmed]:
        self._find(request.caller_number, request.account_id)
        if request.currency != self.records.currency:
            raise Refusal(ErrorCode.REJECTED, f"Accounts are kept in {self.records.currency}.")
        if (
            request.authority.limit_minor is not None
            and request.amount_minor > request.authority.limit_minor
        ):
            raise Refusal(ErrorCode.REJECTED, "The amount is above the limit the agent cited.")
        note = (
            self.records.policy.credit_note if kind == "credit" else self.records.policy.refund_note
        )
        taken = Taken(kind, request.call_id, self._ref(prefix), request.amount_minor)
        return taken, self._confirm(request, taken, note)

    def _confirm(
        self,
        request: RequestRefund | GrantCredit | PlaceOrder | OpenTicket,
        taken: Taken,
        note: str,
    ) -> ActionConfirmed:
        return ActionConfirmed(
            call_id=request.call_id,
            request_id=request.request_id,
            reference=taken.reference,
            amount_minor=taken.amount_minor,
            currency=None if taken.amount_minor is None else self.records.currency,
            detail=note,
        )

    def _once(
        self, request_id: str, act: Callable[[], tuple[Taken, ActionConfirmed]]
    ) -> ActionConfirmed:
        if request_id in self.taken:
            return self.taken[request_id][1]
        taken, confirmed = act()
        self.taken[request_id] = (taken, confirmed)
        return confirmed

    def _find(self, number: str | None, account_id: str | None) -> _Account:
        for account in self.records.accounts:
            if account_id is not None and account.account_id == account_id:
                return account
            if number is not None and number in account.numbers:
                return account
        raise Refusal(ErrorCode.NOT_FOUND, "No account matches this caller.")

    def _invoice(self, invoice: _Invoice) -> Invoice:
        return Invoice(
            invoice_id=invoice.invoice_id,
            issued_on=invoice.issued_on,
            total_minor=sum(line.amount_minor for line in invoice.lines),
            currency=self.records.currency,
            lines=[
                InvoiceLine(description=x.description, amount_minor=x.amount_minor)
                for x in invoice.lines
            ],
            due_on=invoice.due_on,
        )

    def _ref(self, prefix: str) -> str:
        return f"{prefix}-{next(self._numbers)}"
