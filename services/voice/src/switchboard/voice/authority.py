"""What an agent may promise on its own, from configuration: pure rules, no I/O.

The limits are settings (``SB_MANAGER_CREDIT_LIMIT``, ``SB_REFUND_LIMITS``,
``SB_ORDERS_BY_PHONE``, ``SB_CURRENCY``), never code constants, and every action that
goes to the back office carries the ``Authority`` that allowed it, so the ``case.*``
event says which rule and limit the promise was made under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from switchboard.contracts.crm import Authority

MINOR_PER_MAJOR = 100
"""Minor units per major unit; every currency this worker is configured for has cents."""
_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£"}
_PAIR = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=\s*([0-9]+(?:\.[0-9]{1,2})?)\s*$")


class AuthorityError(ValueError):
    """A limit in the configuration cannot be read."""


def to_minor(amount: float | Decimal | str) -> int:
    """An amount in major units (dollars) as minor units (cents), rounded half up."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise AuthorityError(f"{amount!r} is not an amount.") from None
    return int((value * MINOR_PER_MAJOR).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def money(minor: int, currency: str) -> str:
    """How an amount is said: ``$64.20``, or ``64.20 CHF`` without a known symbol."""
    major = f"{Decimal(minor) / MINOR_PER_MAJOR:,.2f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{major}" if symbol else f"{major} {currency}"


def parse_limits(text: str) -> dict[str, int]:
    """``billing=25,manager=100`` → minor units per agent id; empty gives no one a limit."""
    limits: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _PAIR.match(part)
        if match is None:
            raise AuthorityError(
                f"{part!r} is not 'agent=amount' (for example billing=25 or manager=100.50)."
            )
        limits[match.group(1)] = to_minor(match.group(2))
    return limits


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured authority of the agents of one worker."""

    currency: str
    credit_limit_minor: int
    """The largest goodwill credit the manager may approve."""
    refund_limits_minor: dict[str, int]
    """The largest refund each agent may request; an agent not listed may request none."""
    orders_by_phone: bool

    def credit(self, amount_minor: int) -> Authority | None:
        """The authority for a goodwill credit of this amount, or None above the limit."""
        if not 0 < amount_minor <= self.credit_limit_minor:
            return None
        return Authority(
            rule="manager_credit_limit", limit_minor=self.credit_limit_minor, currency=self.currency
        )

    def refund(self, agent: str, amount_minor: int) -> Authority | None:
        """The authority for ``agent`` to request this refund, or None above its limit."""
        limit = self.refund_limits_minor.get(agent, 0)
        if not 0 < amount_minor <= limit:
            return None
        return Authority(rule=f"refund_limits.{agent}", limit_minor=limit, currency=self.currency)

    def refund_limit(self, agent: str) -> int:
        return self.refund_limits_minor.get(agent, 0)

    def order(self) -> Authority | None:
        """The authority to place an order by phone, or None when that is not allowed."""
        return Authority(rule="orders_by_phone") if self.orders_by_phone else None
