"""Tamper detection as a mutation test: random single edits, deletions, reorderings and
insertions made behind the triggers' back (triggers dropped or disabled) on ledgers of
thousands of records; every one is detected at the right first bad sequence."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.consent.ledger.chain import StoredRecord, link
from switchboard.consent.ledger.ledger import Ledger, verify_store
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.consent.ledger.signing import CheckpointSigner
from switchboard.consent.ledger.sql import SqlStore
from switchboard.contracts.consent import RecordConsent

CHECKPOINT_EVERY = 500
Command = Callable[..., RecordConsent]


@dataclass(frozen=True)
class Built:
    head: int
    checkpoints: tuple[int, ...]
    keys: dict[str, bytes]


def build(store: SqlStore, records: int, command: Command, signer: CheckpointSigner) -> Built:
    ledger = Ledger(store, LedgerSecret(os.urandom(32)), signer)
    cps: list[int] = []
    for start in range(0, records, 100):
        ledger.append([command() for _ in range(min(100, records - start))])
        if (start + 100) % CHECKPOINT_EVERY == 0:
            cps.append(ledger.checkpoint().sequence)
    if not cps or cps[-1] != records:
        cps.append(ledger.checkpoint().sequence)
    return Built(records, tuple(cps), {signer.key_id: signer.public_key})


# -- mutations: each returns the sequence verification must name ---------------------


def _pinned_before(built: Built, k: int) -> int:
    """First sequence a checkpoint mismatch can name: after the last checkpoint below k."""
    return max((c for c in built.checkpoints if c < k), default=0) + 1


def _get(store: SqlStore, seq: int) -> StoredRecord:
    found = store.record(seq)
    assert found is not None
    return found


def _replace(store: SqlStore, stored: StoredRecord) -> None:
    store._execute("DELETE FROM consent_records WHERE seq = ?", (stored.seq,))
    store.insert_records([stored])


def _shift_up_after(store: SqlStore, k: int) -> None:
    store._execute("UPDATE consent_records SET seq = -seq WHERE seq > ?", (k,))
    store._execute("UPDATE consent_records SET seq = -seq + 1 WHERE seq < 0")


def edit_field(store: SqlStore, built: Built, rng: random.Random) -> int:
    k = rng.randint(1, built.head)
    field, value = rng.choice(
        [
            ("decision", "denied"),
            ("jurisdiction", "US-NY"),
            ("notice_version", "forged:en"),
            ("call_id", "other-call"),
            ("mode", "notify"),
            ("command_id", str(uuid.uuid4())),
        ]
    )
    store._execute(f"UPDATE consent_records SET {field} = ? WHERE seq = ?", (value, k))
    return k


def edit_sealed_data(store: SqlStore, built: Built, rng: random.Random) -> int:
    k = rng.randint(1, built.head)
    stored = _get(store, k)
    assert stored.record.sealed is not None
    flipped = bytearray(stored.record.sealed)
    flipped[rng.randrange(len(flipped))] ^= 0x01
    record = msgspec.structs.replace(stored.record, sealed=bytes(flipped))
    _replace(store, msgspec.structs.replace(stored, record=record))
    return k


def edit_hash(store: SqlStore, built: Built, rng: random.Random) -> int:
    k = rng.randint(1, built.head)
    column = rng.choice(["hash", "prev_hash"])
    store._execute(f"UPDATE consent_records SET {column} = ? WHERE seq = ?", (os.urandom(32), k))
    return k


def edit_and_rehash(store: SqlStore, built: Built, rng: random.Random) -> int:
    k = rng.randint(1, built.head)
    stored = _get(store, k)
    record = msgspec.structs.replace(
        stored.record, decision="granted" if stored.record.decision != "granted" else "denied"
    )
    _replace(store, link(record, stored.prev_hash))
    return _pinned_before(built, k) if k in built.checkpoints else k


def rewrite_tail(store: SqlStore, built: Built, rng: random.Random) -> int:
    """Edit one record and re-hash every record after it: only a checkpoint can tell."""
    k = rng.randint(1, built.head)
    prev = _get(store, k).prev_hash
    for seq in range(k, built.head + 1):
        stored = _get(store, seq)
        record = stored.record
        if seq == k:
            record = msgspec.structs.replace(record, jurisdiction="US-TX")
        relinked = link(record, prev)
        _replace(store, relinked)
        prev = relinked.hash
    return _pinned_before(built, k)


def delete_one(store: SqlStore, built: Built, rng: random.Random) -> int:
    k = rng.randint(1, built.head)
    store._execute("DELETE FROM consent_records WHERE seq = ?", (k,))
    return k


def delete_tail(store: SqlStore, built: Built, rng: random.Random) -> int:
    m = rng.randint(1, 5)
    store._execute("DELETE FROM consent_records WHERE seq > ?", (built.head - m,))
    return built.head - m + 1


def swap_two(store: SqlStore, built: Built, rng: random.Random) -> int:
    i, j = sorted(rng.sample(range(1, built.head + 1), 2))
    store._execute("UPDATE consent_records SET seq = -1 WHERE seq = ?", (i,))
    store._execute("UPDATE consent_records SET seq = ? WHERE seq = ?", (i, j))
    store._execute("UPDATE consent_records SET seq = ? WHERE seq = -1", (j,))
    return i


def insert_naive(store: SqlStore, built: Built, rng: random.Random) -> int:
    k = rng.randint(1, built.head - 1)
    template = _get(store, k)
    _shift_up_after(store, k)
    record = msgspec.structs.replace(
        template.record, seq=k + 1, command_id=str(uuid.uuid4()), decision="granted"
    )
    store.insert_records(
        [StoredRecord(record=record, prev_hash=os.urandom(32), hash=os.urandom(32))]
    )
    return k + 1


def insert_forged(store: SqlStore, built: Built, rng: random.Random) -> int:
    """An inserted record hashed correctly after the one before it."""
    k = rng.randint(1, built.head - 1)
    template = _get(store, k)
    _shift_up_after(store, k)
    record = msgspec.structs.replace(
        template.record, seq=k + 1, command_id=str(uuid.uuid4()), decision="granted"
    )
    store.insert_records([link(record, template.hash)])
    return k + 1


MUTATIONS = [
    edit_field,
    edit_sealed_data,
    edit_hash,
    edit_and_rehash,
    rewrite_tail,
    delete_one,
    delete_tail,
    swap_two,
    insert_naive,
    insert_forged,
]


def _check(store: SqlStore, built: Built, expected: int, what: str) -> None:
    result = verify_store(store, built.keys)
    assert not result.ok, f"{what}: not detected"
    assert result.first_bad_sequence == expected, f"{what}: {result.problem}"


# -- SQLite: each mutation on a copy of the file, triggers dropped ---------------------


@pytest.fixture(scope="module")
def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory, command: Command) -> tuple[Path, Built]:
    path = tmp_path_factory.mktemp("tamper") / "ledger.db"
    store = open_store(str(path))
    assert isinstance(store, SqlStore)
    built = build(store, 3000, command, CheckpointSigner(Ed25519PrivateKey.generate()))
    store.close()
    return path, built


def test_the_untouched_ledger_verifies(sqlite_ledger: tuple[Path, Built]) -> None:
    path, built = sqlite_ledger
    store = open_store(str(path), create=False)
    try:
        result = verify_store(store, built.keys)
    finally:
        store.close()
    assert result.ok, result.problem
    assert (result.records_checked, result.checkpoints_checked) == (3000, len(built.checkpoints))


@pytest.mark.parametrize("seed", range(12))
def test_every_tampering_of_a_sqlite_ledger_is_detected(
    sqlite_ledger: tuple[Path, Built], tmp_path: Path, seed: int
) -> None:
    path, built = sqlite_ledger
    rng = random.Random(seed)
    for mutation in MUTATIONS:
        copy = tmp_path / f"{mutation.__name__}.db"
        shutil.copyfile(path, copy)
        store = open_store(str(copy), create=False)
        assert isinstance(store, SqlStore)
        try:
            for trigger in ("no_update", "no_delete"):
                store._execute(f"DROP TRIGGER consent_records_{trigger}")
            expected = mutation(store, built, rng)
            _check(store, built, expected, f"seed {seed} {mutation.__name__}")
        finally:
            store.close()
        copy.unlink()


# -- PostgreSQL: each mutation in a rolled-back transaction, triggers disabled ---------


@pytest.mark.postgres
def test_every_tampering_of_a_postgres_ledger_is_detected(
    postgres_dsn: str, command: Command, signer: CheckpointSigner
) -> None:
    store = open_store(postgres_dsn)
    assert isinstance(store, SqlStore)
    try:
        built = build(store, 2000, command, signer)
        assert verify_store(store, built.keys).ok
        conn = store._conn  # type: ignore[attr-defined]
        for seed in range(6):
            rng = random.Random(1000 + seed)
            for mutation in MUTATIONS:
                with conn.transaction(force_rollback=True):
                    conn.execute("ALTER TABLE consent_records DISABLE TRIGGER USER")
                    expected = mutation(store, built, rng)
                    _check(store, built, expected, f"seed {seed} {mutation.__name__}")
        assert verify_store(store, built.keys).ok  # every mutation was rolled back
    finally:
        store.close()


# -- the command line names the first bad sequence -------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.consent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SB_CHECKPOINT_KEY_FILE": "/nonexistent/key.pem"},
    )


def test_the_verify_command_exits_non_zero_naming_the_first_bad_sequence(
    sqlite_ledger: tuple[Path, Built], tmp_path: Path
) -> None:
    path, _ = sqlite_ledger
    ok = _cli("verify", "--db", str(path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: 3000 records" in ok.stdout

    copy = tmp_path / "tampered.db"
    shutil.copyfile(path, copy)
    store = open_store(str(copy), create=False)
    assert isinstance(store, SqlStore)
    store._execute("DROP TRIGGER consent_records_no_update")
    store._execute("UPDATE consent_records SET decision = 'granted' WHERE seq = 1234")
    store._execute("UPDATE consent_records SET decision = 'denied' WHERE seq = 1234")
    store.close()
    bad = _cli("verify", "--db", str(copy))
    assert bad.returncode == 1
    assert "first bad sequence 1234" in bad.stdout
    as_json = _cli("verify", "--db", str(copy), "--json")
    assert msgspec.json.decode(as_json.stdout)["first_bad_sequence"] == 1234

    missing = _cli("verify", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2
    assert "No ledger database" in missing.stderr


@pytest.mark.postgres
def test_the_verify_command_works_on_postgres(
    postgres_dsn: str, command: Command, signer: CheckpointSigner, tmp_path: Path
) -> None:
    store = open_store(postgres_dsn)
    assert isinstance(store, SqlStore)
    try:
        build(store, 300, command, signer)
        assert _cli("verify", "--db", postgres_dsn).returncode == 0
        store._execute("ALTER TABLE consent_records DISABLE TRIGGER USER")
        store._execute("DELETE FROM consent_records WHERE seq = 77")
        result = _cli("verify", "--db", postgres_dsn)
        assert result.returncode == 1
        assert "first bad sequence 77" in result.stdout
    finally:
        store.close()
