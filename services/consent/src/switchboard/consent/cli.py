"""Command line: run the service, verify a ledger, export one caller's records.

``verify`` and ``export`` work on the database directly (``--db`` takes a SQLite path or
a PostgreSQL DSN), so an auditor can run them without NATS.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from switchboard.consent import __version__
from switchboard.consent.ledger.keyfiles import KeyFileError
from switchboard.consent.ledger.ledger import Ledger, verify_store
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.consent.ledger.signing import load_public_key
from switchboard.consent.ledger.store import LedgerStore, StoreError
from switchboard.consent.policy import PolicyError
from switchboard.consent.settings import (
    ConsentSettings,
    checkpoint_key_file,
    ledger_dsn,
    secret_file,
)
from switchboard.contracts.consent import LedgerVerification, LookupConsent
from switchboard.runtime.settings import SettingsError, load

EXIT_TAMPERED = 1
EXIT_ERROR = 2
EXPORT_LIMIT = 10_000_000


def _parser(settings: ConsentSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m switchboard.consent", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the consent service (the default)")
    verify = sub.add_parser("verify", help="verify the hash chain and signed checkpoints")
    verify.add_argument("--db", default=ledger_dsn(settings), help="SQLite path or PostgreSQL DSN")
    verify.add_argument(
        "--public-key",
        type=Path,
        help="trust only this Ed25519 key (PEM) for checkpoints; default: the ledger's "
        "checkpoint key file if present, else the keys recorded in the ledger",
    )
    verify.add_argument("--from", dest="from_sequence", type=int, default=1)
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    export = sub.add_parser("export", help="print one caller's records as JSON lines")
    export.add_argument("--db", default=ledger_dsn(settings))
    export.add_argument("--caller", required=True, help="the caller's number (E.164)")
    export.add_argument(
        "--secret-file", type=Path, help="the ledger secret (default: as the service finds it)"
    )
    return parser


def _trusted_keys(
    store: LedgerStore, public_key: Path | None, settings: ConsentSettings, db: str
) -> dict[str, bytes]:
    if public_key is not None:
        key_id, raw = load_public_key(public_key)
        return {key_id: raw}
    own = checkpoint_key_file(settings, db)
    if own.exists():
        key_id, raw = load_public_key(own)
        return {key_id: raw}
    print(
        "warning: no --public-key given and no checkpoint key file found; trusting the "
        "signing keys recorded in the ledger itself.",
        file=sys.stderr,
    )
    return store.signing_keys()


def _report(result: LedgerVerification, as_json: bool) -> None:
    if as_json:
        print(msgspec.json.encode(result).decode())
    elif result.ok:
        print(
            f"OK: {result.records_checked} records and {result.checkpoints_checked} "
            f"checkpoints verified; head {result.head_sequence} {result.head_hash}."
        )
    else:
        where = (
            f"first bad sequence {result.first_bad_sequence}"
            if result.first_bad_sequence is not None
            else "checkpoint problem"
        )
        print(f"FAILED: {where}: {result.problem}")


def verify_command(args: argparse.Namespace, settings: ConsentSettings) -> int:
    store = open_store(args.db, create=False)
    try:
        keys = _trusted_keys(store, args.public_key, settings, args.db)
        result = verify_store(store, keys, max(1, args.from_sequence))
    finally:
        store.close()
    _report(result, args.json)
    return 0 if result.ok else EXIT_TAMPERED


def export_command(args: argparse.Namespace, settings: ConsentSettings) -> int:
    secret = LedgerSecret.from_file(
        args.secret_file or secret_file(settings, args.db), generate=False
    )
    store = open_store(args.db, create=False)
    try:
        ledger = Ledger(store, secret)
        views = ledger.lookup(LookupConsent(caller_number=args.caller, limit=1000))
        if len(views) == 1000:
            subject_key = store.subject_key(ledger.secret.subject_ref(args.caller, ""))
            if subject_key is not None:
                views = ledger.views(store.records_by_subject(subject_key.subject, EXPORT_LIMIT))
    finally:
        store.close()
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    for view in views:
        out.write(encoder.encode(view) + b"\n")
    out.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(ConsentSettings)
        parser = _parser(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            return verify_command(args, settings)
        if args.command == "export":
            return export_command(args, settings)
        return serve(settings)
    except (StoreError, KeyFileError, PolicyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def serve(settings: ConsentSettings) -> int:
    """Run the service until SIGTERM; a bad policy or key file stops it at start, a dead
    ingest loop later (exit 2)."""
    from switchboard.consent.app import make_setup, policy_source
    from switchboard.contracts.subjects import Owner
    from switchboard.runtime.service import ServiceFailed, run_service

    policy = policy_source(settings)
    setup = make_setup(settings, policy)
    try:
        asyncio.run(run_service(Owner.CONSENT.value, __version__, settings, setup))
    except ServiceFailed as exc:
        # Logged when it happened; a non-zero exit gets the process restarted.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0
