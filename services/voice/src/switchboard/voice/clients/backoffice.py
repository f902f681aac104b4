"""The back office over NATS: typed requests to the customer's CRM adapter on ``sb.crm.*``.

This is the production worker's ``BackOffice``. Each request has the back-office timeout;
no responder, a timeout, an error reply or an answer that cannot be read all become
``BackOfficeUnavailable`` (nothing is known, nothing is promised), and a refusal
(``rejected``, ``not_found``, ``bad_request``) becomes ``BackOfficeRefused``. An action's
confirmation must name the request it answers, or it is not taken as one.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import msgspec
from nats.aio.client import Client as NATS

from switchboard.contracts import subjects
from switchboard.contracts.base import Message
from switchboard.contracts.crm import (
    Account,
    ActionConfirmed,
    Catalog,
    FindSupportSteps,
    GrantCredit,
    ListCatalog,
    LookupAccount,
    OpenTicket,
    PlaceOrder,
    RequestRefund,
    SupportSteps,
)
from switchboard.contracts.errors import ErrorCode
from switchboard.runtime.bus import RequestFailed, request
from switchboard.voice.backoffice import BackOfficeRefused, BackOfficeUnavailable
from switchboard.voice.state import CallInfo

log = logging.getLogger(__name__)

R = TypeVar("R")
_REFUSALS = frozenset({ErrorCode.REJECTED, ErrorCode.NOT_FOUND, ErrorCode.BAD_REQUEST})


class NatsBackOffice:
    """Asks the CRM adapter (the ``crm`` service) over NATS request/reply."""

    def __init__(self, nc: NATS, *, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def account(self, caller: CallInfo) -> Account:
        query = LookupAccount(call_id=caller.call_id, caller_number=caller.caller_number)
        return await self._ask(subjects.CRM_ACCOUNT_LOOKUP, query, Account, "billing")

    async def catalog(self, caller: CallInfo) -> Catalog:
        query = ListCatalog(call_id=caller.call_id)
        return await self._ask(subjects.CRM_CATALOG_LIST, query, Catalog, "catalogue")

    async def support_steps(self, caller: CallInfo, problem: str, attempt: int) -> SupportSteps:
        query = FindSupportSteps(call_id=caller.call_id, problem=problem, attempt=attempt)
        return await self._ask(subjects.CRM_SUPPORT_STEPS, query, SupportSteps, "diagnostics")

    async def request_refund(self, request: RequestRefund) -> ActionConfirmed:
        return await self._act(subjects.CRM_REFUND_REQUEST, request, "billing")

    async def grant_credit(self, request: GrantCredit) -> ActionConfirmed:
        return await self._act(subjects.CRM_CREDIT_GRANT, request, "billing")

    async def place_order(self, request: PlaceOrder) -> ActionConfirmed:
        return await self._act(subjects.CRM_ORDER_PLACE, request, "order")

    async def open_ticket(self, request: OpenTicket) -> ActionConfirmed:
        return await self._act(subjects.CRM_TICKET_OPEN, request, "ticketing")

    async def _act(
        self,
        subject: str,
        action: RequestRefund | GrantCredit | PlaceOrder | OpenTicket,
        system: str,
    ) -> ActionConfirmed:
        done = await self._ask(subject, action, ActionConfirmed, system)
        if done.request_id != action.request_id or done.call_id != action.call_id:
            log.error(
                "The back office confirmed another request; nothing is promised.",
                extra={"subject": subject, "call_id": action.call_id},
            )
            raise BackOfficeUnavailable(system)
        return done

    async def _ask(self, subject: str, message: Message, reply: type[R], system: str) -> R:
        call_id: str = message.call_id  # type: ignore[attr-defined]
        try:
            answer: R = await request(self._nc, subject, message, reply, self._timeout)
        except RequestFailed as exc:
            code = exc.error.code
            log.warning(
                "The back office did not do what was asked.",
                extra={"subject": subject, "call_id": call_id, "code": str(code)},
            )
            if code in _REFUSALS:
                raise BackOfficeRefused(system, code) from None
            raise BackOfficeUnavailable(system) from None
        except msgspec.DecodeError:
            log.error(
                "The back office's answer does not match the contract.",
                extra={"subject": subject, "call_id": call_id},
            )
            raise BackOfficeUnavailable(system) from None
        return answer
