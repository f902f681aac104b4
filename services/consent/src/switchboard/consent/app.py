"""Wiring of the consent service: ledger, policy, request endpoints, ingest, checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from switchboard.consent.dbthread import DbThread
from switchboard.consent.handlers import Handlers, log_checkpoint
from switchboard.consent.ingest import Ingest, ensure_consumer
from switchboard.consent.ledger.keyfiles import KeyFileError
from switchboard.consent.ledger.ledger import Ledger, verify_store
from switchboard.consent.ledger.open import describe, open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.consent.ledger.signing import CheckpointSigner
from switchboard.consent.ledger.store import StoreUnavailable
from switchboard.consent.policy_source import PolicySource
from switchboard.consent.pull import PullFeed
from switchboard.consent.settings import (
    ConsentSettings,
    checkpoint_key_file,
    ledger_dsn,
    secret_file,
)
from switchboard.consent.timing import ingest_timing
from switchboard.contracts import streams, subjects
from switchboard.contracts.consent import LedgerVerification
from switchboard.runtime.bus import require_stream
from switchboard.runtime.logs import exception_facts
from switchboard.runtime.service import Cleanup, Runtime, Setup, add_typed_endpoint
from switchboard.runtime.settings import env_name

SECRET_VAR = env_name("ledger_secret_file")
CHECKPOINT_KEY_VAR = env_name("checkpoint_key_file")

log = logging.getLogger(__name__)


def open_ledger(settings: ConsentSettings) -> Ledger:
    """The ledger named by the settings, with its secret and signing key.

    A missing key file stops the service with the file and the variable that names it:
    in production (``SB_LEDGER_GENERATE_KEYS=false``) both come from one Secret that every
    replica mounts, since replicas with secrets of their own would disagree on callers.
    """
    generate = settings.ledger_generate_keys
    try:
        secret = LedgerSecret.from_file(secret_file(settings), generate)
    except KeyFileError as exc:
        raise KeyFileError(f"{exc} Mount the ledger secret there or set {SECRET_VAR}.") from None
    try:
        signer = CheckpointSigner.from_file(checkpoint_key_file(settings), generate)
    except KeyFileError as exc:
        raise KeyFileError(
            f"{exc} Mount the checkpoint signing key there or set {CHECKPOINT_KEY_VAR}."
        ) from None
    store = open_store(ledger_dsn(settings), sqlite_sync=settings.ledger_sqlite_sync)
    return Ledger(store, secret, signer)


def policy_source(settings: ConsentSettings) -> PolicySource:
    """The policy in force; raises ``PolicyError`` when the file is unusable at start."""
    return PolicySource(Path(settings.policy_file) if settings.policy_file else None)


def _verifier(db: str, keys: dict[str, bytes]) -> Callable[[int], LedgerVerification]:
    def verify(from_sequence: int) -> LedgerVerification:
        store = open_store(db, create=False)
        try:
            return verify_store(store, keys, from_sequence)
        finally:
            store.close()

    return verify


async def _checkpoint_now(ledger: Ledger, db: DbThread) -> int:
    checkpoint = await db.run(ledger.checkpoint)
    log_checkpoint(checkpoint)
    return checkpoint.sequence


async def _checkpoint_periodically(ledger: Ledger, db: DbThread, every_s: float) -> None:
    last = await db.run(ledger.last_checkpoint)
    signed = last.sequence if last is not None else -1
    while True:
        await asyncio.sleep(every_s)
        try:
            head, _ = await db.run(ledger.store.head)
            if head != signed:
                signed = await _checkpoint_now(ledger, db)
        except StoreUnavailable:
            pass  # the store logs the outage; the next period tries again
        except Exception as exc:
            log.error("Could not write a periodic checkpoint.", extra=exception_facts(exc))


def make_setup(settings: ConsentSettings, policy: PolicySource) -> Setup:
    """The service's setup function (``run_service`` calls it once connected)."""

    async def setup(rt: Runtime) -> Cleanup:
        db = DbThread()
        ledger = await db.run(open_ledger, settings)
        log.info("Ledger open.", extra={"ledger_db": describe(settings.ledger_db)})
        handlers = Handlers(
            policy,
            ledger,
            db,
            _verifier(ledger_dsn(settings), ledger.trusted_keys()),
            checkpoint_min_interval=dt.timedelta(seconds=settings.checkpoint_min_interval_s),
        )
        routes: dict[str, Callable[[Any], Awaitable[Any]]] = {
            subjects.CONSENT_POLICY: handlers.on_policy,
            subjects.CONSENT_LOOKUP: handlers.on_lookup,
            subjects.CONSENT_ERASE: handlers.on_erase,
            subjects.CONSENT_CHECKPOINT: handlers.on_checkpoint,
            subjects.CONSENT_CALLER_KEY: handlers.on_caller_key,
            subjects.CONSENT_UNSEAL: handlers.on_unseal,
        }
        for subject, handler in routes.items():
            await add_typed_endpoint(rt.service, subjects.request_spec(subject), handler)
        # A verification walks the whole ledger: a few at a time, the rest told to retry.
        await add_typed_endpoint(
            rt.service,
            subjects.request_spec(subjects.CONSENT_VERIFY),
            handlers.on_verify,
            max_concurrent=max(1, settings.verify_concurrency),
        )
        await require_stream(rt.js, streams.CONSENT_COMMANDS)
        await require_stream(rt.js, streams.EVENTS)
        timing = ingest_timing(settings.consent_receipt_timeout_s, settings.ingest_batch)
        await ensure_consumer(rt.js, timing.ack_wait_s, max_ack_pending=timing.max_ack_pending)
        feed = PullFeed(
            rt.nc,
            streams.CONSENT_COMMANDS.name,
            streams.CONSENT_LEDGER_CONSUMER,
            timing.batch,
            ack_wait_s=timing.ack_wait_s,
        )
        # A JetStream context of its own: the receipt publisher's async acks are its alone.
        ingest = Ingest(
            rt.nc.jetstream(),
            feed,
            ledger,
            db,
            rt.instance,
            timing.batch,
            publish_timeout_s=timing.publish_timeout_s,
            on_failure=rt.fail,
        )
        await ingest.start()
        policy.start(settings.policy_poll_s)
        tasks: list[asyncio.Task[None]] = []
        if settings.checkpoint_interval_s > 0:
            tasks.append(
                asyncio.create_task(
                    _checkpoint_periodically(ledger, db, settings.checkpoint_interval_s)
                )
            )

        async def cleanup() -> None:
            await policy.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ingest.stop()
            with contextlib.suppress(Exception):
                last = await db.run(ledger.last_checkpoint)
                head, _ = await db.run(ledger.store.head)
                if last is None or last.sequence != head:
                    await _checkpoint_now(ledger, db)
            await db.run(ledger.store.close)
            db.close()

        return cleanup

    return setup
