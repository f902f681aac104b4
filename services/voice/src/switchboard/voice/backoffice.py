"""The customer's systems the agents act through: billing, diagnostics, catalogue, orders.

Agents never invent a business fact. Every figure, step or confirmation they speak comes
from a ``BackOffice``; when no system answers, the call says so and offers a person
instead of guessing. A deployment passes its own implementation to the worker; with
none, :class:`NoBackOffice` makes every action report that the system is unavailable.
The simulation package ships a scripted one for text-mode calls.
"""

from __future__ import annotations

from typing import Protocol

from switchboard.voice.state import CallInfo


class BackOfficeUnavailable(Exception):
    """No system of record answered (none deployed, a timeout, an error)."""

    def __init__(self, system: str) -> None:
        super().__init__(f"The {system} system did not answer.")
        self.system = system


class BackOffice(Protocol):
    """What the agents may look up or do in the customer's systems.

    Every method raises ``BackOfficeUnavailable`` when its system cannot answer.
    """

    async def latest_bill(self, caller: CallInfo) -> str:
        """The caller's latest bill, as the billing system states it (amounts, date)."""
        ...

    async def troubleshooting(self, problem: str, attempt: int) -> str | None:
        """The steps to try for ``problem`` on the ``attempt``-th try (1-based), or
        ``None`` when nothing more can be done remotely."""
        ...

    async def plans(self) -> str:
        """The plans and products on sale, with their prices."""
        ...

    async def place_order(self, caller: CallInfo, product: str, email: str, address: str) -> str:
        """Place an order; returns the order system's reference."""
        ...

    async def grant_credit(self, caller: CallInfo, amount: float) -> str:
        """Put a goodwill credit on the caller's account; returns the billing reference."""
        ...


class NoBackOffice:
    """No back office is wired in: every action is unavailable, and the agents say so."""

    async def latest_bill(self, caller: CallInfo) -> str:
        raise BackOfficeUnavailable("billing")

    async def troubleshooting(self, problem: str, attempt: int) -> str | None:
        raise BackOfficeUnavailable("diagnostics")

    async def plans(self) -> str:
        raise BackOfficeUnavailable("catalogue")

    async def place_order(self, caller: CallInfo, product: str, email: str, address: str) -> str:
        raise BackOfficeUnavailable("order")

    async def grant_credit(self, caller: CallInfo, amount: float) -> str:
        raise BackOfficeUnavailable("billing")
