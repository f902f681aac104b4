"""At-least-once delivery: redelivery after ack_wait, and kill -9 of the ledger process in
the middle of ingesting; every acknowledged publish ends up in the ledger exactly once."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from consent_testkit import drained, env_for, publish, settings_for, stored_events, wait_ready
from nats.aio.client import Client as NATS

from switchboard.consent.dbthread import DbThread
from switchboard.consent.ingest import Ingest, ensure_consumer
from switchboard.consent.ledger.ledger import Ledger, Outcome, verify_store
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.consent.ledger.signing import CheckpointSigner, load_public_key
from switchboard.consent.pull import PullFeed
from switchboard.contracts import streams
from switchboard.contracts.consent import RECEIPT_TIMEOUT_S, ConsentRecorded, RecordConsent
from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import ensure_stream
from switchboard.testing import eventually

Command = Callable[..., RecordConsent]
CONSUMER = streams.CONSENT_LEDGER_CONSUMER


class SlowFirstLedger(Ledger):
    """Counts what it is asked to append; the first append holds on until ``release`` is
    set, so JetStream redelivers the command while the first delivery is still in hand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.seen: Counter[str] = Counter()

    def append(self, commands: Sequence[RecordConsent]) -> list[Outcome]:
        self.seen.update(c.command_id for c in commands)
        outcomes = super().append(commands)
        if sum(self.seen.values()) == len(commands):
            self.release.wait(30)  # committed, but not yet acknowledged
        return outcomes


async def test_a_redelivery_after_ack_wait_appends_nothing_new(
    nc: NATS, tmp_path: Path, command: Command, signer: CheckpointSigner
) -> None:
    js = nc.jetstream()
    await ensure_stream(js, streams.CONSENT_COMMANDS)
    await ensure_stream(js, streams.EVENTS)
    await ensure_consumer(js, ack_wait_s=0.5, max_ack_pending=64)
    store = open_store(str(tmp_path / "ledger.db"))
    ledger = SlowFirstLedger(store, LedgerSecret(os.urandom(32)), signer)
    db = DbThread()
    feed = PullFeed(nc, streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER, 16)
    ingest = Ingest(js, feed, ledger, db, "test", 16)
    await ingest.start()
    try:
        cmd = command(call_id="slow")
        await publish(js, cmd)

        async def redelivered() -> bool:
            info = await js.consumer_info(
                streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER
            )
            return bool(info.num_redelivered)

        await eventually(redelivered, message="JetStream to redeliver the unacknowledged command")
        ledger.release.set()
        await eventually(
            lambda: ledger.seen[cmd.command_id] >= 2, message="the redelivery to reach the ledger"
        )
        await drained(js)
        assert ledger.seen[cmd.command_id] >= 2  # it really was delivered again
        assert store.head()[0] == 1
        events = [e for e, p in await stored_events(js) if p.command_id == cmd.command_id]
        assert len(events) == 1  # the republished receipt had the same id
    finally:
        ledger.release.set()
        await ingest.stop()
        await db.run(store.close)
        db.close()


async def test_a_live_ledger_keeps_what_it_holds_past_ack_wait(
    nc: NATS, tmp_path: Path, command: Command, signer: CheckpointSigner
) -> None:
    """Finding 6 (issue 7): ``ack_wait`` is short (1 s) so a dead process's commands move
    on promptly; a live one that is slow reports progress, so nothing it holds is
    redelivered from under it (and appended twice over)."""
    js = nc.jetstream()
    await ensure_stream(js, streams.CONSENT_COMMANDS)
    await ensure_stream(js, streams.EVENTS)
    await ensure_consumer(js, ack_wait_s=0.5, max_ack_pending=64)
    store = open_store(str(tmp_path / "ledger.db"))
    ledger = SlowFirstLedger(store, LedgerSecret(os.urandom(32)), signer)
    db = DbThread()
    feed = PullFeed(
        nc, streams.CONSENT_COMMANDS.name, CONSUMER, 16, heartbeat_s=0.5, ack_wait_s=0.5
    )
    ingest = Ingest(js, feed, ledger, db, "test", 16)
    await ingest.start()
    try:
        cmd = command(call_id="kept")
        await publish(js, cmd)
        await eventually(lambda: ledger.seen[cmd.command_id] == 1)
        # Held across four times ack_wait: kept alive all along.
        await eventually(lambda: feed.kept_alive >= 4, message="progress reports")
        ledger.release.set()
        info = await drained(js)
        assert info.num_redelivered == 0
        assert ledger.seen[cmd.command_id] == 1
        assert store.head()[0] == 1
    finally:
        ledger.release.set()
        await ingest.stop()
        await db.run(store.close)
        db.close()


async def _publish_all(
    nc: NATS, commands: list[RecordConsent], acked: list[str], failed: list[str]
) -> None:
    js = nc.jetstream()
    for start in range(0, len(commands), 25):
        chunk = commands[start : start + 25]
        results = await asyncio.gather(*(publish(js, c) for c in chunk), return_exceptions=True)
        for cmd, result in zip(chunk, results, strict=True):
            (failed if isinstance(result, BaseException) else acked).append(cmd.command_id)
        await asyncio.sleep(0.002)


@pytest.mark.slow
async def test_kill_9_in_the_middle_of_ingest_loses_and_duplicates_nothing(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    settings = settings_for(nats_server.url, tmp_path, log_level="INFO")
    log_path = tmp_path / "consent.log"

    def launch() -> ServiceProcess:
        return ServiceProcess(
            "switchboard.consent", "consent", env=env_for(settings), log_path=log_path
        ).start()

    first = launch()
    second: ServiceProcess | None = None
    try:
        await first.ready(nats_server.url)
        await wait_ready(nc)
        recorded: list[str] = []
        enough = asyncio.Event()

        async def on_event(msg: Any) -> None:
            recorded.append(msg.subject)
            if len(recorded) >= 300:
                enough.set()

        await nc.subscribe("sb.evt.consent.recorded.*", cb=on_event)
        commands = [command(call_id=f"crash-{i}") for i in range(1500)]
        acked: list[str] = []
        failed: list[str] = []
        publishing = asyncio.create_task(_publish_all(nc, commands, acked, failed))
        await asyncio.wait_for(enough.wait(), 30)
        first.kill()
        store = open_store(settings.ledger_db, create=False)
        try:
            at_kill = store.head()[0]
        finally:
            store.close()
        assert 0 < at_kill < len(commands)
        await publishing
        assert len(acked) >= 1000
        assert not failed

        second = launch()
        await second.ready(nats_server.url)
        await drained(nc.jetstream(), timeout=60)
        assert second.stop() == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()

    store = open_store(settings.ledger_db, create=False)
    try:
        in_ledger = [r.record.command_id for r in store.iter_records()]
        key_id, public = load_public_key(Path(settings.checkpoint_key_file))
        result = verify_store(store, {key_id: public})
    finally:
        store.close()
    assert Counter(in_ledger) == Counter(acked)  # every acked command, exactly once
    assert result.ok, result.problem
    receipts = [
        p.command_id
        for _, p in await stored_events(nc.jetstream())
        if isinstance(p, ConsentRecorded)
    ]
    assert Counter(receipts) == Counter(acked)  # one receipt event each, none lost

    log = log_path.read_text()
    assert "Service ready." in log
    assert "415555" not in log
    assert "that's fine" not in log


@pytest.mark.slow
async def test_after_a_kill_9_new_commands_get_receipts_within_the_voice_workers_wait(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    """Finding 6 (issue 7): the killed process's in-flight commands (up to 1,024) held
    ``max_ack_pending`` until ``ack_wait`` (30 s) ran out, ten times the voice worker's
    3 s receipt wait: every call in that window went unrecorded. Sized from the receipt
    wait, a new process gives a new command its receipt within that wait."""
    settings = settings_for(nats_server.url, tmp_path, log_level="INFO")
    log_path = tmp_path / "consent.log"
    js = nc.jetstream()
    await ensure_stream(js, streams.CONSENT_COMMANDS)
    # A backlog, so the first process takes as many commands as it may hold at once.
    backlog = [command(call_id=f"backlog-{i}") for i in range(1500)]
    acked: list[str] = []
    failed: list[str] = []
    await _publish_all(nc, backlog, acked, failed)
    assert not failed

    def launch() -> ServiceProcess:
        return ServiceProcess(
            "switchboard.consent", "consent", env=env_for(settings), log_path=log_path
        ).start()

    receipts = 0
    some = asyncio.Event()

    async def on_event(msg: Any) -> None:
        nonlocal receipts
        receipts += 1
        if receipts >= 100:
            some.set()

    await nc.subscribe("sb.evt.consent.recorded.*", cb=on_event)
    first = launch()
    second: ServiceProcess | None = None
    try:
        await asyncio.wait_for(some.wait(), 30)
        first.kill()
        held = await js.consumer_info(streams.CONSENT_COMMANDS.name, CONSUMER)
        assert held.num_ack_pending > 0  # the dead process had commands in hand

        second = launch()
        await second.ready(nats_server.url)
        fresh = command(call_id="after-the-crash")
        receipt: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        async def on_fresh(msg: Any) -> None:
            if not receipt.done():
                receipt.set_result(asyncio.get_running_loop().time())

        await nc.subscribe(f"sb.evt.consent.recorded.{fresh.call_id}", cb=on_fresh)
        sent = asyncio.get_running_loop().time()
        await publish(js, fresh)
        arrived = await asyncio.wait_for(receipt, RECEIPT_TIMEOUT_S)
        assert arrived - sent < RECEIPT_TIMEOUT_S
        await drained(js, timeout=30)
        assert second.stop() == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()
