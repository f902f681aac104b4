"""The customer's systems the agents act through: accounts, catalogue, support, actions.

Agents never invent a business fact. Every figure, step or confirmation they speak comes
from a ``BackOffice`` reply; when no system answers, the call says so and offers a person
instead of guessing. The production worker's back office is the CRM adapter over NATS
(``clients/backoffice.py``); tests may plug in another implementation of this protocol.
"""

from __future__ import annotations

from typing import Protocol

from switchboard.contracts.crm import (
    Account,
    ActionConfirmed,
    Catalog,
    GrantCredit,
    OpenTicket,
    PlaceOrder,
    RequestRefund,
    SupportSteps,
)
from switchboard.contracts.errors import ErrorCode
from switchboard.voice.state import CallInfo


class BackOfficeUnavailable(Exception):
    """No system of record answered (none deployed, a timeout, an error, an unreadable
    answer): nothing is known, and nothing may be promised."""

    def __init__(self, system: str) -> None:
        super().__init__(f"The {system} system did not answer.")
        self.system = system


class BackOfficeRefused(Exception):
    """The system answered and refused (no such account, an order it will not take)."""

    def __init__(self, system: str, code: ErrorCode) -> None:
        super().__init__(f"The {system} system refused the request ({code}).")
        self.system = system
        self.code = code


class BackOffice(Protocol):
    """What the agents may look up or do in the customer's systems.

    Every method raises ``BackOfficeUnavailable`` when its system cannot answer and
    ``BackOfficeRefused`` when it answers no.
    """

    async def account(self, caller: CallInfo) -> Account:
        """The caller's account and latest invoice (system ``billing``)."""
        ...

    async def catalog(self, caller: CallInfo) -> Catalog:
        """The products and plans on sale, with prices (system ``catalogue``)."""
        ...

    async def support_steps(self, caller: CallInfo, problem: str, attempt: int) -> SupportSteps:
        """The ``attempt``-th fix to try for ``problem`` (system ``diagnostics``)."""
        ...

    async def request_refund(self, request: RequestRefund) -> ActionConfirmed:
        """Ask billing for a refund (system ``billing``)."""
        ...

    async def grant_credit(self, request: GrantCredit) -> ActionConfirmed:
        """Put a goodwill credit on the account (system ``billing``)."""
        ...

    async def place_order(self, request: PlaceOrder) -> ActionConfirmed:
        """Place an order (system ``order``)."""
        ...

    async def open_ticket(self, request: OpenTicket) -> ActionConfirmed:
        """Open a follow-up ticket (system ``ticketing``)."""
        ...
