"""Fixtures of the consent ledger tests: both backends, keys, commands."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.consent.ledger.ledger import Ledger
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.consent.ledger.signing import CheckpointSigner
from switchboard.contracts.base import new_id, utcnow
from switchboard.contracts.consent import ConsentDecision, ConsentMode, RecordConsent

_counter = itertools.count(1)


@pytest.fixture
def secret() -> LedgerSecret:
    return LedgerSecret(os.urandom(32))


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.generate())


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger database: a SQLite file on disk, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


@pytest.fixture
def ledger(db: str, secret: LedgerSecret, signer: CheckpointSigner) -> Iterator[Ledger]:
    store = open_store(db)
    try:
        yield Ledger(store, secret, signer)
    finally:
        store.close()


def make_command(**overrides: Any) -> RecordConsent:
    n = next(_counter)
    fields: dict[str, Any] = {
        "call_id": f"call-{n}",
        "decision": ConsentDecision.GRANTED,
        "jurisdiction": "US-CA",
        "mode": ConsentMode.ASK,
        "notice_version": "ask-2025-01:en",
        "command_id": new_id(),
        "decided_at": utcnow(),
        "caller_number": f"+1415555{n % 10000:04d}",
        "transcript_excerpt": "Yes, that's fine.",
    }
    fields.update(overrides)
    return RecordConsent(**fields)


@pytest.fixture(scope="session")
def command() -> Callable[..., RecordConsent]:
    """A factory of valid ``RecordConsent`` commands (keyword overrides)."""
    return make_command


# The service tests share helpers in consent_testkit.py (a unique module name).
sys.path.insert(0, str(Path(__file__).parent))
