"""The consent service over a real nats-server: receipts, duplicates, hostile commands,
typed errors on every request subject, audit requests, policy reloads."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from consent_testkit import (
    drained,
    publish,
    running,
    settings_for,
    stored_events,
    subscribe_events,
)
from nats.aio.client import Client as NATS

from switchboard.consent import app as consent_app
from switchboard.consent.ledger.ledger import Ledger, verify_store
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.signing import load_public_key, signature_valid
from switchboard.consent.settings import ConsentSettings
from switchboard.contracts.consent import (
    CallerErased,
    ConsentDecision,
    ConsentMode,
    ConsentPolicy,
    ConsentPolicyQuery,
    ConsentRecorded,
    ConsentRecords,
    ConsentRevoked,
    CreateCheckpoint,
    EraseCaller,
    LedgerCheckpoint,
    LedgerVerification,
    LookupConsent,
    RecordConsent,
    VerifyLedger,
)
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.subjects import (
    CONSENT_CHECKPOINT,
    CONSENT_ERASE,
    CONSENT_LOOKUP,
    CONSENT_POLICY,
    CONSENT_VERIFY,
    consent_record_subject,
)
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import RequestFailed, request
from switchboard.testing import eventually

Command = Callable[..., RecordConsent]


async def test_a_decision_gets_a_receipt_event_and_lands_in_the_ledger(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    settings = settings_for(nats_server.url, tmp_path)
    async with running(settings, nc):
        waiter = await subscribe_events(nc)
        cmd = command(call_id="call-receipt")
        await publish(nc.jetstream(), cmd)
        [(event, recorded)] = await waiter.wait_for(1)
        assert isinstance(recorded, ConsentRecorded)
        assert event.subject == "call-receipt"
        assert event.type == "io.switchboard.consent.recorded.v1"
        assert recorded.command_id == cmd.command_id
        assert recorded.decision is ConsentDecision.GRANTED
        assert recorded.receipt.sequence == 1
        records = await request(
            nc, CONSENT_LOOKUP, LookupConsent(call_id="call-receipt"), ConsentRecords, 2
        )
        [view] = records.records
        assert view.chain_hash == recorded.receipt.chain_hash
        assert view.caller_number == cmd.caller_number


async def test_a_revocation_emits_recorded_then_revoked(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    async with running(settings_for(nats_server.url, tmp_path), nc):
        waiter = await subscribe_events(nc)
        js = nc.jetstream()
        granted = command(call_id="call-rev")
        revoked = command(call_id="call-rev", decision=ConsentDecision.REVOKED)
        await publish(js, granted)
        await publish(js, revoked)
        events = await waiter.wait_for(3)
        kinds = [type(payload).__name__ for _, payload in events]
        assert kinds == ["ConsentRecorded", "ConsentRecorded", "ConsentRevoked"]
        assert isinstance(events[2][1], ConsentRevoked)
        assert events[2][1].receipt.sequence == 2


async def test_duplicate_publishes_are_appended_once_with_one_receipt_event(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    async with running(settings_for(nats_server.url, tmp_path), nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        cmd = command(call_id="call-dup")
        # Same Nats-Msg-Id (dropped by the stream) and fresh ids (reach the ledger).
        for msg_id in (None, None, "retry-1", "retry-2", "retry-3"):
            await publish(js, cmd, msg_id=msg_id)
        await waiter.wait_for(1)
        await drained(js)  # every delivery, duplicates included, was handled
        events = await stored_events(js)
        assert [e.id for e, _ in events] == [events[0][0].id]
        records = await request(
            nc, CONSENT_LOOKUP, LookupConsent(call_id="call-dup"), ConsentRecords, 2
        )
        assert len(records.records) == 1
    store = open_store(str(tmp_path / "ledger.db"), create=False)
    try:
        assert store.head()[0] == 1
    finally:
        store.close()


def _hostile_bodies(command: Command) -> list[tuple[str, bytes]]:
    good = json.loads(msgspec.json.encode(command(call_id="hostile")))
    subject = consent_record_subject("hostile")

    def variant(**changes: object) -> bytes:
        return json.dumps({**good, **changes}).encode()

    missing = {k: v for k, v in good.items() if k != "decision"}
    return [
        (subject, b"{not json"),
        (subject, b"\xff\xfe\x00binary"),
        (subject, b"[]"),
        (subject, b""),
        (subject, variant(call_id=42)),
        (subject, variant(decision="maybe")),
        (subject, variant(decision=None)),
        (subject, variant(mode="record-anyway")),
        (subject, variant(decided_at="yesterday")),
        (subject, variant(transcript_excerpt="x" * 100_000)),
        (subject, variant(notice_version="v" * 10_000)),
        (subject, variant(caller_number="+1" * 100)),
        (subject, variant(transcript_excerpt="a\x00b")),
        (subject, json.dumps(missing).encode()),
        (consent_record_subject("someone-else"), variant()),
        (subject, b'{"call_id": "hostile", "decision": "granted"' + b" " * 500_000 + b"}"),
    ]


async def test_malformed_and_hostile_commands_are_dead_lettered_and_ingest_goes_on(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    async with running(settings_for(nats_server.url, tmp_path), nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        bodies = _hostile_bodies(command)
        for i, (subject, body) in enumerate(bodies):
            await js.publish(subject, body, headers={"Nats-Msg-Id": f"hostile-{i}"})
        good = command(call_id="after-hostile")
        await publish(js, good)
        [(_, recorded)] = await waiter.wait_for(1)
        assert recorded.command_id == good.command_id
        assert recorded.receipt.sequence == 1
        await drained(js)  # nothing pending, nothing awaiting an ack
    store = open_store(str(tmp_path / "ledger.db"), create=False)
    try:
        letters = store.dead_letters(limit=100)
        assert len(letters) == len(bodies)
        reasons = " ".join(letter.reason for letter in letters)
        assert "maybe" not in reasons  # values are never echoed into reasons
        assert "$.decision" in reasons
        assert "$.transcript_excerpt" in reasons
        assert "does not match the subject" in reasons
        assert "NUL" in reasons
        assert verify_store(store, store.signing_keys()).ok
        assert store.head()[0] == 1
    finally:
        store.close()


BAD_REQUESTS = [
    (CONSENT_POLICY, b"{nope", "$"),
    (CONSENT_POLICY, b'{"call_id": 7}', "$.call_id"),
    (CONSENT_POLICY, b"{}", "$.call_id"),
    (CONSENT_POLICY, b'{"call_id": "c", "language": "not a tag!"}', "$.language"),
    (CONSENT_VERIFY, b"{nope", "$"),
    (CONSENT_VERIFY, b'{"from_sequence": "one"}', "$.from_sequence"),
    (CONSENT_VERIFY, b'{"from_sequence": 0}', "$.from_sequence"),
    (CONSENT_LOOKUP, b"{nope", "$"),
    (CONSENT_LOOKUP, b'{"limit": "all"}', "$.limit"),
    (CONSENT_LOOKUP, b'{"call_id": "c", "limit": 0}', "$.limit"),
    (CONSENT_LOOKUP, b"{}", "$"),
    (CONSENT_ERASE, b"{nope", "$"),
    (CONSENT_ERASE, b'{"caller_number": 14155550100}', "$.caller_number"),
    (CONSENT_ERASE, b"{}", "$.caller_number"),
    (CONSENT_CHECKPOINT, b"{nope", "$"),
    (CONSENT_CHECKPOINT, b"[1, 2]", "$"),
]


async def test_every_request_subject_answers_bad_input_with_a_typed_error(
    nats_server: NatsServer, nc: NATS, tmp_path: Path
) -> None:
    async with running(settings_for(nats_server.url, tmp_path), nc):
        for subject, body, field in BAD_REQUESTS:
            reply = await nc.request(subject, body, timeout=2)
            assert reply.headers is not None, (subject, body)
            assert reply.headers.get("Nats-Service-Error-Code") == "400", (subject, body)
            error = json.loads(reply.data)
            assert error["code"] == ErrorCode.BAD_REQUEST.value
            assert error["subject"] == subject
            assert error["message"]
            assert error["field"] == field, (subject, body, error)
        # Still serving.
        policy = await request(
            nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="ok"), ConsentPolicy, 2
        )
        assert policy.mode is ConsentMode.ASK


async def test_lookup_erase_checkpoint_and_verify_over_the_bus(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    async with running(settings_for(nats_server.url, tmp_path), nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        number = "+14155550142"
        cmds = [command(call_id=f"audit-{i}", caller_number=number) for i in range(3)]
        cmds.append(command(call_id="audit-0", caller_number="+12125550143"))
        for cmd in cmds:
            await publish(js, cmd)
        await waiter.wait_for(4)

        mine = await request(
            nc, CONSENT_LOOKUP, LookupConsent(caller_number=number), ConsentRecords, 2
        )
        assert [r.call_id for r in mine.records] == ["audit-0", "audit-1", "audit-2"]

        checkpoint = await request(nc, CONSENT_CHECKPOINT, CreateCheckpoint(), LedgerCheckpoint, 2)
        assert checkpoint.sequence == 4
        key_id, public = load_public_key(tmp_path / "checkpoint.pem")
        assert signature_valid(checkpoint, {key_id: public})

        erased = await request(
            nc, CONSENT_ERASE, EraseCaller(caller_number=number), CallerErased, 2
        )
        assert erased.records_affected == 3
        call = await request(
            nc, CONSENT_LOOKUP, LookupConsent(call_id="audit-0"), ConsentRecords, 2
        )
        assert [(r.erased, r.caller_number) for r in call.records] == [
            (True, None),
            (False, "+12125550143"),
        ]
        result = await request(nc, CONSENT_VERIFY, VerifyLedger(), LedgerVerification, 5)
        assert (result.ok, result.records_checked, result.checkpoints_checked) == (True, 4, 1)
        partial = await request(
            nc, CONSENT_VERIFY, VerifyLedger(from_sequence=3), LedgerVerification, 5
        )
        assert (partial.ok, partial.records_checked) == (True, 2)


POLICY = """
[default]
mode = "ask"
[ai_disclosure]
en = "AI."
[notices.ask]
version = "ask-{n}"
[notices.ask.text]
en = "May we record?"
[notices.notify]
version = "notify-{n}"
[notices.notify.text]
en = "We record."
[jurisdictions."US-*"]
mode = "notify"
"""


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    stamp = os.stat(path).st_mtime_ns + bump * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


async def _notice_version(nc: NATS) -> str:
    query = ConsentPolicyQuery(call_id="p", caller_number="+12125550100")
    policy = await request(nc, CONSENT_POLICY, query, ConsentPolicy, 2)
    return policy.notice_version


async def _until_notice(nc: NATS, expected: str) -> None:
    async def in_force() -> bool:
        return await _notice_version(nc) == expected

    await eventually(in_force, message=f"notice {expected} in force")


async def test_the_policy_reloads_on_change_and_on_sighup_and_refuses_bad_files(
    nats_server: NatsServer, nc: NATS, tmp_path: Path
) -> None:
    path = tmp_path / "policy.toml"
    _write(path, POLICY.format(n=1), 0)
    settings = settings_for(nats_server.url, tmp_path, policy_file=str(path), policy_poll_s=0.05)
    async with running(settings, nc) as service:
        assert await _notice_version(nc) == "notify-1:en"
        _write(path, POLICY.format(n=1).replace('"ask"', '"notify"'), 1)
        await eventually(lambda: service.policy.last_error, message="the bad file refused")
        assert await _notice_version(nc) == "notify-1:en"  # refused; previous in force
        _write(path, POLICY.format(n=2), 2)
        await _until_notice(nc, "notify-2:en")

    # SIGHUP reloads even when the file's stamp did not change (polling off).
    _write(path, POLICY.format(n=3), 3)
    settings = settings_for(nats_server.url, tmp_path, policy_file=str(path), policy_poll_s=3600)
    async with running(settings, nc):
        assert await _notice_version(nc) == "notify-3:en"
        stamp = os.stat(path).st_mtime_ns
        path.write_text(POLICY.format(n=4))
        os.utime(path, ns=(stamp, stamp))
        os.kill(os.getpid(), signal.SIGHUP)
        await _until_notice(nc, "notify-4:en")


def _count_head_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The head sequences the service's ledger reads (the checkpointer reads it each tick)."""
    reads: list[int] = []
    open_ledger = consent_app.open_ledger

    def open_watched(settings: ConsentSettings) -> Ledger:
        ledger = open_ledger(settings)
        read_head = ledger.store.head

        def head() -> tuple[int, bytes]:
            found = read_head()
            reads.append(found[0])
            return found

        monkeypatch.setattr(ledger.store, "head", head)
        return ledger

    monkeypatch.setattr(consent_app, "open_ledger", open_watched)
    return reads


async def test_a_checkpoint_is_written_periodically_when_the_head_moves(
    nats_server: NatsServer,
    nc: NATS,
    tmp_path: Path,
    command: Command,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    head_reads = _count_head_reads(monkeypatch)
    settings = settings_for(nats_server.url, tmp_path, checkpoint_interval_s=0.2)
    async with running(settings, nc):
        waiter = await subscribe_events(nc)
        await publish(nc.jetstream(), command())
        await waiter.wait_for(1)
        store = open_store(settings.ledger_db, create=False)
        try:
            await eventually(store.checkpoints, message="the first periodic checkpoint")
            # Every tick reads the head, and a tick that signs reads it once more: three
            # more reads mean a whole later tick ran to its end with the head unmoved.
            seen = len(head_reads)
            await eventually(
                lambda: len(head_reads) >= seen + 3, message="three more checkpointer ticks"
            )
            checkpoints = store.checkpoints()
        finally:
            store.close()
        assert [c.sequence for c in checkpoints] == [1]  # once: the head did not move again
        assert base64.b64decode(checkpoints[0].signature)


async def test_requests_fail_fast_with_a_typed_error_when_nothing_answers(nc: NATS) -> None:
    with pytest.raises(RequestFailed) as failed:
        await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="x"), ConsentPolicy, 0.5)
    assert failed.value.error.code is ErrorCode.UNAVAILABLE
