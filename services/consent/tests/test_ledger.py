"""The ledger on both backends: append-only, idempotent, sealed personal data, erasure,
checkpoints, dead letters."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable

import psycopg
import pytest

from switchboard.consent.ledger.chain import (
    GENESIS,
    TIME_FORMAT,
    chain_hash,
    format_time,
    parse_time,
)
from switchboard.consent.ledger.ledger import Appended, Ledger, QueryError, Refused
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.consent.ledger.signing import CheckpointSigner, signature_valid
from switchboard.consent.ledger.store import StoreError
from switchboard.contracts.consent import ConsentDecision, LookupConsent, RecordConsent

Command = Callable[..., RecordConsent]


def test_appends_chain_each_record_to_the_one_before(ledger: Ledger, command: Command) -> None:
    outcomes = ledger.append([command(), command(), command()])
    stored = [o.stored for o in outcomes if isinstance(o, Appended)]
    assert [s.seq for s in stored] == [1, 2, 3]
    assert stored[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    assert all(chain_hash(s.record, s.prev_hash) == s.hash for s in stored)
    assert ledger.verify().ok


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 4, 5, 6, 7, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 4, 5, 6, 7, 500000, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 4, 5, 6, 7, 1),
        dt.datetime(2025, 3, 4, 23, 30, 0, 42, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    ],
)
def test_the_canonical_time_text_is_the_documented_format(value: dt.datetime) -> None:
    utc = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    text = format_time(value)
    assert text == utc.strftime(TIME_FORMAT)
    if utc.year >= 1000:
        assert parse_time(text) == utc


def test_a_command_id_is_applied_once_across_and_within_batches(
    ledger: Ledger, command: Command
) -> None:
    first = command()
    ledger.append([first])
    again = ledger.append([first, first, command()])
    assert [isinstance(o, Appended) and o.duplicate for o in again] == [True, True, False]
    assert [o.stored.seq for o in again if isinstance(o, Appended)] == [1, 1, 2]
    assert ledger.store.head()[0] == 2


def test_a_reused_command_id_with_other_content_is_refused(
    ledger: Ledger, command: Command
) -> None:
    first = command()
    ledger.append([first])
    forged = command(
        command_id=first.command_id, call_id=first.call_id, decision=ConsentDecision.DENIED
    )
    [outcome] = ledger.append([forged])
    assert isinstance(outcome, Refused)
    assert "sequence 1" in outcome.reason
    assert ledger.store.head()[0] == 1


def test_personal_data_is_stored_only_encrypted(ledger: Ledger, command: Command, db: str) -> None:
    cmd = command(caller_number="+14155550123", transcript_excerpt="Yes, record me, I'm Ada.")
    ledger.append([cmd])
    stored = ledger.store.record(1)
    assert stored is not None
    assert stored.record.sealed is not None
    raw = b"".join(
        bytes(str(v), "utf-8") if not isinstance(v, bytes) else v
        for v in (stored.record.sealed, stored.record.subject, stored.record.call_id)
    )
    assert b"4155550123" not in raw
    assert b"Ada" not in raw
    if not db.startswith("postgres"):
        with open(db, "rb") as f:
            assert b"4155550123" not in f.read()


def test_every_encryption_in_an_append_has_its_own_nonce(ledger: Ledger, command: Command) -> None:
    outcomes = ledger.append([command() for _ in range(300)])
    sealed = [o.stored.record.sealed for o in outcomes if isinstance(o, Appended)]
    keys = ledger.store.subject_keys_for(
        [o.stored.record.subject or "" for o in outcomes if isinstance(o, Appended)]
    )
    nonces = [s[:12] for s in sealed if s] + [k.wrapped[:12] for k in keys.values()]
    assert len(nonces) == 300 + len(keys) > 300
    assert len(set(nonces)) == len(nonces)
    assert len({k.subject for k in keys.values()}) == len(keys)


def test_lookups_by_call_and_by_caller_open_the_personal_data(
    ledger: Ledger, command: Command
) -> None:
    a = command(caller_number="+14155550001", call_id="call-a")
    b = command(caller_number="+14155550001", call_id="call-b", decision=ConsentDecision.REVOKED)
    other = command(caller_number="+12125550002", call_id="call-a")
    ledger.append([a, b, other])
    by_call = ledger.lookup(LookupConsent(call_id="call-a"))
    assert [v.command_id for v in by_call] == [a.command_id, other.command_id]
    by_caller = ledger.lookup(LookupConsent(caller_number="+1 415 555 0001"))
    assert [v.call_id for v in by_caller] == ["call-a", "call-b"]
    assert by_caller[1].decision is ConsentDecision.REVOKED
    assert by_caller[0].caller_number == "+14155550001"
    assert by_caller[0].transcript_excerpt == a.transcript_excerpt
    both = ledger.lookup(LookupConsent(call_id="call-a", caller_number="+12125550002"))
    assert [v.command_id for v in both] == [other.command_id]
    assert ledger.lookup(LookupConsent(caller_number="+19999999999")) == []
    with pytest.raises(QueryError):
        ledger.lookup(LookupConsent())


AWKWARD = "it's \\ \"quoted\" ; $$ %s %(x)s \n\t ünï 😀 ' OR '1'='1"


def test_awkward_text_is_stored_and_read_back_exactly(ledger: Ledger, command: Command) -> None:
    cmd = command(
        command_id=f"id-{AWKWARD}"[:128],
        jurisdiction=AWKWARD,
        notice_version=AWKWARD[:128],
        transcript_excerpt=AWKWARD,
    )
    [first] = ledger.append([cmd])
    [again] = ledger.append([cmd])  # found again by its awkward command id
    assert isinstance(first, Appended)
    assert isinstance(again, Appended)
    assert (again.duplicate, again.stored) == (True, first.stored)
    [view] = ledger.lookup(LookupConsent(call_id=cmd.call_id))
    assert (view.command_id, view.jurisdiction, view.notice_version) == (
        cmd.command_id,
        AWKWARD,
        AWKWARD[:128],
    )
    assert view.transcript_excerpt == AWKWARD
    assert ledger.verify().ok


def test_erasure_makes_records_unreadable_and_the_chain_still_verifies(
    ledger: Ledger, command: Command
) -> None:
    mine = [command(caller_number="+14155550777", call_id=f"e-{i}") for i in range(3)]
    theirs = command(caller_number="+14155550778", call_id="e-0")
    ledger.append([*mine, theirs])
    ledger.checkpoint()
    assert ledger.erase("+14155550777") == 3
    assert ledger.erase("+14155550777") == 0
    views = ledger.lookup(LookupConsent(call_id="e-0"))
    assert [(v.erased, v.caller_number) for v in views] == [
        (True, None),
        (False, "+14155550778"),
    ]
    assert views[0].transcript_excerpt is None
    assert views[0].decision is ConsentDecision.GRANTED  # the decision itself is kept
    assert ledger.lookup(LookupConsent(caller_number="+14155550777")) == []
    result = ledger.verify()
    assert result.ok, result.problem
    assert result.checkpoints_checked == 1
    # A later call from the same number gets a new key and pseudonym.
    ledger.append([command(caller_number="+14155550777", call_id="e-9")])
    again = ledger.lookup(LookupConsent(caller_number="+14155550777"))
    assert [v.call_id for v in again] == ["e-9"]


def test_the_database_refuses_updates_and_deletes(
    ledger: Ledger, command: Command, db: str
) -> None:
    ledger.append([command()])
    ledger.checkpoint()
    statements = [
        "UPDATE consent_records SET decision = 'denied'",
        "DELETE FROM consent_records",
        "UPDATE checkpoints SET seq = 5",
        "DELETE FROM checkpoints",
    ]
    if db.startswith("postgres"):
        statements += ["TRUNCATE consent_records", "TRUNCATE checkpoints"]
    for sql in statements:
        with pytest.raises(StoreError, match="append-only"):
            ledger.store._execute(sql)  # type: ignore[attr-defined]
    assert ledger.store.head()[0] == 1
    assert ledger.verify().ok


def test_checkpoints_are_signed_and_verified(
    ledger: Ledger, command: Command, signer: CheckpointSigner
) -> None:
    empty = ledger.checkpoint()
    assert (empty.sequence, empty.head_hash) == (0, GENESIS.hex())
    ledger.append([command(), command()])
    checkpoint = ledger.checkpoint()
    assert checkpoint.sequence == 2
    keys = {signer.key_id: signer.public_key}
    assert signature_valid(checkpoint, keys)
    assert not signature_valid(checkpoint, {})
    assert ledger.store.checkpoints()[-1] == checkpoint
    result = ledger.verify()
    assert (result.ok, result.checkpoints_checked, result.head_sequence) == (True, 2, 2)


def test_a_checkpoint_signed_by_another_key_fails_verification(
    db: str, secret: LedgerSecret, signer: CheckpointSigner, command: Command
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    store = open_store(db)
    try:
        Ledger(store, secret, CheckpointSigner(Ed25519PrivateKey.generate())).checkpoint()
        ledger = Ledger(store, secret, signer)
        ledger.append([command()])
        result = ledger.verify()
        assert not result.ok
        assert result.first_bad_sequence is None
        assert result.problem is not None
        assert "not signed by a trusted key" in result.problem
    finally:
        store.close()


def test_dead_letters_are_kept_encrypted_outside_the_chain(
    ledger: Ledger, secret: LedgerSecret
) -> None:
    body = b'{"call_id": "x", "caller_number": "+14155550999", "decision": "perhaps"}'
    ledger.dead_letter(body, "Invalid RecordConsent", "sb.cmd.consent.record.x", 7, "m-1")
    [letter] = ledger.store.dead_letters()
    assert letter.reason == "Invalid RecordConsent"
    assert letter.body_size == len(body)
    assert letter.stream_seq == 7
    assert b"4155550999" not in letter.body_sealed
    assert secret.open_dead_letter(letter.body_sealed) == body
    assert ledger.store.head()[0] == 0


def test_two_writers_on_one_database_never_fork_the_chain(
    db: str, secret: LedgerSecret, signer: CheckpointSigner, command: Command
) -> None:
    stores = [open_store(db), open_store(db)]
    errors: list[BaseException] = []

    def writer(ledger: Ledger) -> None:
        try:
            for _ in range(40):
                ledger.append([command(), command()])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(Ledger(s, secret, signer),)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        result = Ledger(stores[0], secret, signer).verify()
        assert (result.ok, result.head_sequence) == (True, 160)
    finally:
        for s in stores:
            s.close()


def test_postgres_connection_errors_are_store_errors() -> None:
    with pytest.raises(StoreError):
        open_store("postgresql://nobody@127.0.0.1:1/none")
    assert issubclass(StoreError, RuntimeError)
    assert psycopg is not None


def test_a_postgres_ledger_recovers_when_its_prepared_statements_are_dropped(
    postgres_dsn: str, secret: LedgerSecret, signer: CheckpointSigner, command: Command
) -> None:
    store = open_store(postgres_dsn)
    try:
        ledger = Ledger(store, secret, signer)
        ledger.append([command()])
        store._execute("DEALLOCATE ALL")  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="does not exist"):
            ledger.append([command()])
        outcomes = ledger.append([command(), command()])
        assert [o.stored.seq for o in outcomes if isinstance(o, Appended)] == [2, 3]
        assert ledger.verify().ok
    finally:
        store.close()


def test_a_failed_postgres_append_leaves_no_transaction_open(
    postgres_dsn: str, secret: LedgerSecret, signer: CheckpointSigner, command: Command
) -> None:
    store = open_store(postgres_dsn)
    try:
        ledger = Ledger(store, secret, signer)
        ledger.append([command()])
        store._execute("ALTER TABLE consent_records ADD CHECK (call_id <> 'refused')")  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="check constraint"):
            ledger.append([command(), command(call_id="refused")])
        assert store.head()[0] == 1
        ledger.append([command()])
        assert store.head()[0] == 2
        assert ledger.verify().ok
    finally:
        store.close()
