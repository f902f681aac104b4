"""What the caller wants: the department, buying, a refund, an amount of money."""

from __future__ import annotations

import re
from typing import Final, Literal

from switchboard.voice.understanding.text import normalise
from switchboard.voice.understanding.text import words as _words

Department = Literal["billing", "support", "sales"]
DEPARTMENTS: Final[tuple[Department, ...]] = ("billing", "support", "sales")

_INTENTS: Final[dict[Department, re.Pattern[str]]] = {
    "billing": _words(
        "bill",
        "billing",
        "bills",
        "billed",
        "invoice",
        "invoices",
        "charge",
        "charged",
        "charges",
        "refund",
        "payment",
        "pay",
        "paid",
        "balance",
        "overcharged",
        "subscription fee",
    ),
    "support": _words(
        "support",
        "technical",
        "tech",
        "broken",
        "not working",
        "doesn't work",
        "stopped working",
        "internet",
        "wifi",
        "wi-fi",
        "connection",
        "router",
        "outage",
        "dropping",
        "keeps dropping",
        "error",
        "password",
        "log in",
        "login",
        "reset",
        "crash",
        "crashes",
        "slow",
    ),
    "sales": _words(
        "buy",
        "purchase",
        "order",
        "upgrade",
        "new plan",
        "pricing",
        "price",
        "prices",
        "quote",
        "sales",
        "sign up",
        "subscribe",
        "headset",
    ),
}


def intent(text: str) -> Department | None:
    """The department a sentence is about; the first listed wins a tie (billing is the
    most common reason to call and the most sensitive to get wrong)."""
    t = normalise(text)
    for name, pattern in _INTENTS.items():
        if pattern.search(t):
            return name
    return None


_REFUND = _words("refund", "refunded", "credit", "money back", "compensation", "reimburse")


def asks_for_refund(text: str) -> bool:
    return bool(_REFUND.search(normalise(text)))


_AMOUNT = re.compile(
    r"(?:\$|£|€)\s?(\d{1,6}(?:\.\d{1,2})?)|(\d{1,6}(?:\.\d{1,2})?)\s?(?:dollars|usd)"
)


def find_amount(text: str) -> float | None:
    """A money amount ("$120", "120 dollars")."""
    found = _AMOUNT.search(text.lower())
    if found is None:
        return None
    return float(found.group(1) or found.group(2))


_ORDER = _words("buy", "order", "purchase", "i'll take", "sign me up", "get the", "want the")


def wants_to_order(text: str) -> bool:
    return bool(_ORDER.search(normalise(text)))
