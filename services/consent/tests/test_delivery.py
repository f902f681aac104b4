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
from switchboard.contracts.consent import ConsentRecorded, RecordConsent
from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import ensure_stream
from switchboard.testing import eventually

Command = Callable[..., RecordConsent]


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
    settings = settings_for(nats_server.url, tmp_path, log_level="INFO", ingest_ack_wait_s=2.0)
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
