"""Typed request handlers of the consent service: policy, lookup, verify, erase, checkpoint,
the callers' event keys and opening sealed event fields.

Thin: each one decodes nothing itself (the runtime does), calls the domain on the
database thread and maps domain errors to typed error replies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from switchboard.consent.dbthread import DbThread
from switchboard.consent.ledger.ledger import CheckpointRefused, KeyErased, Ledger, QueryError
from switchboard.consent.ledger.sealing import SealError
from switchboard.consent.ledger.store import StoreUnavailable
from switchboard.consent.policy_source import PolicySource
from switchboard.contracts.consent import (
    CallerErased,
    ConsentPolicy,
    ConsentPolicyQuery,
    ConsentRecords,
    CreateCheckpoint,
    EraseCaller,
    LedgerCheckpoint,
    LedgerVerification,
    LookupConsent,
    VerifyLedger,
)
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.sealed import CallerKey, GetCallerKey, OpenSealed, SealedOpened
from switchboard.runtime.sealing import SealedFieldsError, open_sealed
from switchboard.runtime.service import RequestError

log = logging.getLogger(__name__)

Q = TypeVar("Q")
R = TypeVar("R")


UNAVAILABLE = "The ledger database is unreachable; try again shortly."
ERASED = "The caller's key no longer exists (erased); the sealed value cannot be opened."
NOT_AUTHENTIC = "The sealed value did not authenticate under the caller's key."


def _database_errors(
    handler: Callable[[Handlers, Q], Awaitable[R]],
) -> Callable[[Handlers, Q], Awaitable[R]]:
    """An unreachable database is ``unavailable`` (retry later), not ``internal``."""

    @functools.wraps(handler)
    async def wrapped(self: Handlers, query: Q) -> R:
        try:
            return await handler(self, query)
        except StoreUnavailable:
            raise RequestError(ErrorCode.UNAVAILABLE, UNAVAILABLE) from None

    return wrapped


@dataclass
class Handlers:
    """The service's handlers over its policy source and ledger."""

    policy: PolicySource
    ledger: Ledger
    db: DbThread
    verifier: Callable[[int], LedgerVerification]
    """Verifies on its own connection, so a long walk does not hold up appends."""
    checkpoint_min_interval: dt.timedelta = dt.timedelta(seconds=60)

    async def on_policy(self, query: ConsentPolicyQuery) -> ConsentPolicy:
        return self.policy.current.decide(query)

    @_database_errors
    async def on_lookup(self, query: LookupConsent) -> ConsentRecords:
        try:
            records = await self.db.run(self.ledger.lookup, query)
        except QueryError as exc:
            raise RequestError(ErrorCode.BAD_REQUEST, str(exc)) from None
        return ConsentRecords(records=records)

    @_database_errors
    async def on_verify(self, query: VerifyLedger) -> LedgerVerification:
        # from_sequence is bounded by the contract; how many run at once, by the endpoint.
        result = await asyncio.to_thread(self.verifier, query.from_sequence)
        if not result.ok:
            log.error(
                "Ledger verification failed.",
                extra={"first_bad_sequence": result.first_bad_sequence, "problem": result.problem},
            )
        return result

    @_database_errors
    async def on_erase(self, query: EraseCaller) -> CallerErased:
        affected = await self.db.run(self.ledger.erase, query.caller_number)
        log.info("Erased a caller's personal data.", extra={"records_affected": affected})
        return CallerErased(records_affected=affected)

    @_database_errors
    async def on_caller_key(self, query: GetCallerKey) -> CallerKey:
        ref, key = await self.db.run(self.ledger.caller_key, query.caller_number, query.call_id)
        return CallerKey(caller_ref=ref, key=key)

    @_database_errors
    async def on_unseal(self, query: OpenSealed) -> SealedOpened:
        sealed = query.sealed
        try:
            key = await self.db.run(self.ledger.event_key_of, sealed.caller_ref)
            fields = open_sealed(sealed, key)
        except KeyErased:
            raise RequestError(ErrorCode.ERASED, ERASED) from None
        except (SealedFieldsError, SealError):
            raise RequestError(ErrorCode.BAD_REQUEST, NOT_AUTHENTIC, "$.sealed") from None
        # Each opening is logged (without what it opened): who reads personal data is
        # part of the audit trail.
        log.info("Opened sealed event fields.", extra={"fields": sorted(fields)})
        return SealedOpened(caller_ref=sealed.caller_ref, fields=fields)

    @_database_errors
    async def on_checkpoint(self, _: CreateCheckpoint) -> LedgerCheckpoint:
        try:
            checkpoint = await self.db.run(
                self.ledger.checkpoint_on_request, self.checkpoint_min_interval
            )
        except CheckpointRefused as exc:
            raise RequestError(ErrorCode.REJECTED, str(exc)) from None
        except QueryError as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None
        log_checkpoint(checkpoint)
        return checkpoint


def log_checkpoint(checkpoint: LedgerCheckpoint) -> None:
    """Checkpoints go to the logs too: a copy outside the database, where auditors can
    find it even if the database were rewritten."""
    log.info(
        "Signed a ledger checkpoint.",
        extra={
            "checkpoint_sequence": checkpoint.sequence,
            "checkpoint_head_hash": checkpoint.head_hash,
            "checkpoint_created_at": checkpoint.created_at.isoformat(),
            "checkpoint_key_id": checkpoint.key_id,
            "checkpoint_signature": checkpoint.signature,
        },
    )
