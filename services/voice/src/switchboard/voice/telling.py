"""What the agents say from the back office's replies, and when it does not answer.

Pure functions: every figure, date and reference in a sentence here comes from a reply
(``contracts.crm``); when there is no reply, the sentence says so and offers a person or
a callback instead of a guess.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from switchboard.contracts.crm import Account, ActionConfirmed, Catalog
from switchboard.contracts.errors import ErrorCode
from switchboard.voice.authority import money
from switchboard.voice.backoffice import BackOfficeRefused, BackOfficeUnavailable

OFFER: Final = "I can put you through to a person, or arrange a callback."
NO_ACCOUNT_VIEW: Final = (
    f"I can't see your account right now, so I can't go through your bill. {OFFER}"
)
NO_ACCOUNT_FOUND: Final = (
    f"I can't find an account for the number you're calling from, so I can't go through a "
    f"bill. {OFFER}"
)
UNAVAILABLE: Final = (
    "I can't reach our {system} system right now, so I can't do that for you myself. " + OFFER
)
REFUSED: Final = "Our {system} system didn't accept that, so nothing was done. " + OFFER


def unavailable(exc: BackOfficeUnavailable | BackOfficeRefused) -> str:
    """What the caller hears when a system of record did not do what was asked."""
    if isinstance(exc, BackOfficeRefused):
        return REFUSED.format(system=exc.system)
    return UNAVAILABLE.format(system=exc.system)


def account_unavailable(exc: BackOfficeUnavailable | BackOfficeRefused) -> str:
    """Explaining a bill without the account: say which of the two it is."""
    if isinstance(exc, BackOfficeRefused) and exc.code is ErrorCode.NOT_FOUND:
        return NO_ACCOUNT_FOUND
    return NO_ACCOUNT_VIEW


def _date(day: dt.date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


def bill(account: Account) -> str:
    """The latest invoice as billing states it."""
    invoice = account.latest_invoice
    if invoice is None:
        return "There's no invoice on your account yet."
    total = money(invoice.total_minor, invoice.currency)
    text = (
        f"Your latest invoice, {invoice.invoice_id}, dated {_date(invoice.issued_on)}, is {total}"
    )
    if invoice.lines:
        parts = [
            f"{line.description} {money(line.amount_minor, invoice.currency)}"
            for line in invoice.lines
        ]
        text += ": " + ", ".join(parts)
    text += "."
    if invoice.due_on is not None:
        text += f" It's due on {_date(invoice.due_on)}."
    return text


def plans(catalog: Catalog) -> str:
    """The products on sale with their prices."""
    if not catalog.products:
        return f"I don't have anything on sale by phone right now. {OFFER}"
    items = []
    for product in catalog.products:
        price = money(product.price_minor, product.currency)
        per = f" a {product.period}" if product.period else ""
        items.append(f"{product.name} is {price}{per}")
    return "; ".join(items) + "."


def confirmed(done: ActionConfirmed, what: str) -> str:
    """An action the back office confirmed: what, its amount if any, the reference, and
    the system's own words about what happens next."""
    amount = ""
    if done.amount_minor is not None and done.currency is not None:
        amount = f" of {money(done.amount_minor, done.currency)}"
    text = f"{what}{amount}, reference {done.reference}."
    if done.detail:
        text += f" {done.detail}"
    return text
