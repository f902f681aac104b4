"""Commands that used to stop ingest for every call (issue 7), and what happens when the
ingest loop dies anyway: the service says so and stops, it never answers as if fine."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import pytest
from consent_testkit import drained, publish, running, settings_for, subscribe_events, wait_ready
from nats.aio.client import Client as NATS

from switchboard.consent import __version__
from switchboard.consent import ingest as ingest_module
from switchboard.consent.app import make_setup, policy_source
from switchboard.consent.dbthread import DbThread
from switchboard.consent.ingest import Ingest, ensure_consumer
from switchboard.consent.ledger.ledger import Ledger, Outcome, verify_store
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.consent.ledger.signing import CheckpointSigner
from switchboard.consent.pull import PullFeed
from switchboard.contracts import streams
from switchboard.contracts.base import utcnow
from switchboard.contracts.consent import RecordConsent
from switchboard.contracts.subjects import Owner, consent_record_subject
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import ensure_stream
from switchboard.runtime.service import ServiceFailed, run_service
from switchboard.testing import eventually

Command = Callable[..., RecordConsent]


def _poison_bodies(command: Command) -> list[bytes]:
    good = msgspec.json.encode(command(call_id="poison", transcript_excerpt="MARKER"))
    invalid_utf8 = good.replace(b"MARKER", b"MA\xff\xfeRKER")
    assert invalid_utf8 != good
    return [
        invalid_utf8,  # UnicodeDecodeError, not a msgspec error
        b'{"call_id": "poison", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # RecursionError
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    ]


async def test_undecodable_and_deeply_nested_commands_are_dead_lettered_and_ingest_goes_on(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    """Finding 1 (issue 7): invalid UTF-8 inside a JSON string and nesting 5,000 deep
    raised past ``decode_command`` and killed the ingest task silently; every later
    command went unrecorded, across restarts. Now both are dead letters and the next
    valid command gets its receipt."""
    settings = settings_for(nats_server.url, tmp_path)
    bodies = _poison_bodies(command)
    async with running(settings, nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        for i, body in enumerate(bodies):
            await js.publish(
                consent_record_subject("poison"), body, headers={"Nats-Msg-Id": f"poison-{i}"}
            )
        good = command(call_id="after-poison")
        await publish(js, good)
        [(_, recorded)] = await waiter.wait_for(1)
        assert recorded.command_id == good.command_id
        await drained(js)
    store = open_store(settings.ledger_db, create=False)
    try:
        letters = store.dead_letters(limit=100)
        assert len(letters) == len(bodies)
        reasons = [letter.reason for letter in letters]
        assert all(reason.startswith("Undecodable command") for reason in reasons), reasons
        assert "MARKER" not in " ".join(reasons)
        assert store.head()[0] == 1
        assert verify_store(store, store.signing_keys()).ok
    finally:
        store.close()


async def test_an_ingest_loop_that_dies_is_logged_and_stops_the_service(
    nats_server: NatsServer,
    nc: NATS,
    tmp_path: Path,
    command: Command,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 1 (issue 7): whatever kills the ingest task, the service must not keep
    answering requests as if it were fine. It logs the failure and stops with
    ``ServiceFailed`` (the process exits non-zero and is restarted)."""

    def broken(body: bytes, subject: str, now: object) -> object:
        raise RuntimeError("a bug in ingest")

    monkeypatch.setattr(ingest_module, "decode_command", broken)
    settings = settings_for(nats_server.url, tmp_path)
    stop = asyncio.Event()
    policy = policy_source(settings)
    task = asyncio.create_task(
        run_service(
            Owner.CONSENT.value, __version__, settings, make_setup(settings, policy), stop=stop
        )
    )
    try:
        await wait_ready(nc)
        await publish(nc.jetstream(), command(call_id="kills-ingest"))
        with pytest.raises(ServiceFailed, match="ingest"):
            await asyncio.wait_for(task, 15)
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(asyncio.shield(task), 15)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    errors = [line for line in lines if line.get("level") == "ERROR"]
    assert any("ingest stopped" in line["message"] for line in errors), errors
    assert any(line.get("reason") == "consent ingest stopped (RuntimeError)" for line in errors)

    # The service's endpoints are gone with it: nothing answers as if fine.
    async def gone() -> bool:
        try:
            await nc.request("$SRV.PING.consent", b"", timeout=0.3)
        except Exception:
            return True
        return False

    await eventually(gone, message="the failed service to leave the bus")


@pytest.mark.parametrize("missing", ["command_id", "decided_at"])
async def test_a_command_without_its_id_or_decision_time_is_dead_lettered(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command, missing: str
) -> None:
    """Finding 5 (issue 7): ``command_id`` and ``decided_at`` had default factories, so a
    command published without them got a fresh id and time on every delivery: each
    redelivery became another record (or a "reused id" dead letter). They are required:
    such a command is dead-lettered naming the field, every time, and nothing is appended."""
    settings = settings_for(nats_server.url, tmp_path)
    body = json.loads(msgspec.json.encode(command(call_id="no-id")))
    del body[missing]
    async with running(settings, nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        for attempt in range(2):  # a producer's retry, under another Nats-Msg-Id
            await js.publish(
                consent_record_subject("no-id"),
                json.dumps(body).encode(),
                headers={"Nats-Msg-Id": f"no-id-{attempt}"},
            )
        good = command(call_id="after-no-id")
        await publish(js, good)
        [(_, recorded)] = await waiter.wait_for(1)
        assert recorded.command_id == good.command_id
        await drained(js)
    store = open_store(settings.ledger_db, create=False)
    try:
        letters = store.dead_letters(limit=100)
        assert [letter.reason for letter in letters] == [
            f"Invalid RecordConsent: Object missing required field `{missing}`"
        ] * 2
        assert store.head()[0] == 1
    finally:
        store.close()


async def test_a_time_that_overflows_in_utc_is_dead_lettered_not_retried_forever(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    """Finding 7 (issue 7): ``0001-01-01T00:00:00+05:00`` is a valid timestamp whose UTC
    form is before year 1: ``OverflowError`` in the append, the batch nak'd forever and
    never dead-lettered, and with it every command batched alongside."""
    settings = settings_for(nats_server.url, tmp_path)
    body = json.loads(msgspec.json.encode(command(call_id="overflow")))
    body["decided_at"] = "0001-01-01T00:00:00+05:00"
    async with running(settings, nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        await js.publish(
            consent_record_subject("overflow"),
            json.dumps(body).encode(),
            headers={"Nats-Msg-Id": "overflow"},
        )
        good = command(call_id="after-overflow")
        await publish(js, good)
        [(_, recorded)] = await waiter.wait_for(1)
        assert recorded.command_id == good.command_id
        await drained(js)
    store = open_store(settings.ledger_db, create=False)
    try:
        [letter] = store.dead_letters(limit=100)
        assert "decided_at" in letter.reason
        assert store.head()[0] == 1
    finally:
        store.close()


class _OneBadCommandLedger(Ledger):
    """Fails any append that holds the command of call ``breaks-append`` (as the overflow
    did): stands for whatever else decoding may let through."""

    def append(self, commands: Sequence[RecordConsent]) -> list[Outcome]:
        if any(c.call_id == "breaks-append" for c in commands):
            raise ValueError("not a database error")
        return super().append(commands)


async def test_a_command_the_append_cannot_take_is_dead_lettered_and_its_batch_recorded(
    nc: NATS, tmp_path: Path, command: Command, signer: CheckpointSigner
) -> None:
    """Finding 7 (issue 7), in depth: an append that fails other than in the database is
    retried one command at a time; the one that fails is dead-lettered, the others in its
    batch are recorded, nothing is nak'd forever."""
    js = nc.jetstream()
    await ensure_stream(js, streams.CONSENT_COMMANDS)
    await ensure_stream(js, streams.EVENTS)
    await ensure_consumer(js, ack_wait_s=30, max_ack_pending=64)
    store = open_store(str(tmp_path / "ledger.db"))
    ledger = _OneBadCommandLedger(store, LedgerSecret(os.urandom(32)), signer)
    db = DbThread()
    feed = PullFeed(nc, streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER, 16)
    ingest = Ingest(js, feed, ledger, db, "test", 16)
    # Published before ingest starts, so they arrive as one batch.
    commands = [command(call_id="before"), command(call_id="breaks-append")]
    commands.append(command(call_id="after"))
    for cmd in commands:
        await publish(js, cmd)
    await ingest.start()
    try:
        await drained(js)
        assert ingest.dead_lettered == 1
        assert [r.record.call_id for r in store.iter_records()] == ["before", "after"]
        [letter] = store.dead_letters()
        assert letter.reason == "The ledger could not append this command (ValueError)."
    finally:
        await ingest.stop()
        await db.run(store.close)
        db.close()


def _hostile_but_valid(command: Command) -> list[dict[str, object]]:
    good = json.loads(msgspec.json.encode(command(call_id="hostile-valid")))
    far = (utcnow() + dt.timedelta(days=2)).isoformat()
    old = (utcnow() - dt.timedelta(days=400)).isoformat()
    return [
        {**good, "jurisdiction": "US-CA\x1b[2J\x1b[31m"},  # ANSI escapes
        {**good, "jurisdiction": "US-CA\n"},
        {**good, "jurisdiction": "Narnia"},
        {**good, "notice_version": "ask-2025-01:en\u202e"},  # right-to-left override
        {**good, "notice_version": "ask 2025"},
        {**good, "source": "auditor"},
        {**good, "decided_at": "9999-12-31T23:59:59Z"},
        {**good, "decided_at": far},
        {**good, "decided_at": old},
        {**good, "decided_at": "2026-01-01T00:00:00"},  # no time zone
    ]


async def test_hostile_but_valid_values_are_dead_lettered_and_keep_out_of_the_chain(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    """Finding 11 (issue 7): ANSI escapes and a right-to-left override in
    ``jurisdiction`` and ``notice_version``, ``source: "auditor"`` and ``decided_at`` in
    year 9999 were appended to the chain. The contract constrains these fields and ingest
    checks ``decided_at`` against the ledger's clock; the rest is dead-lettered."""
    settings = settings_for(nats_server.url, tmp_path)
    bodies = _hostile_but_valid(command)
    async with running(settings, nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        for i, body in enumerate(bodies):
            await js.publish(
                consent_record_subject("hostile-valid"),
                json.dumps(body).encode(),
                headers={"Nats-Msg-Id": f"hostile-valid-{i}"},
            )
        good = command(call_id="after-hostile-valid")
        await publish(js, good)
        [(_, recorded)] = await waiter.wait_for(1)
        assert recorded.command_id == good.command_id
        await drained(js)
    store = open_store(settings.ledger_db, create=False)
    try:
        letters = store.dead_letters(limit=100)
        assert len(letters) == len(bodies), [letter.reason for letter in letters]
        reasons = " ".join(letter.reason for letter in letters)
        for field in ("$.jurisdiction", "$.notice_version", "$.source", "decided_at"):
            assert field in reasons, (field, reasons)
        assert "\x1b" not in reasons
        assert "\u202e" not in reasons
        assert [r.record.call_id for r in store.iter_records()] == ["after-hostile-valid"]
    finally:
        store.close()
