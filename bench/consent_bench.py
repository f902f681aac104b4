"""Consent ledger benchmark: decision-to-receipt latency and append throughput per backend,
next to the raw database insert rate and the raw JetStream publish rate of the same run.

Run: ``python -m bench.consent_bench`` (``--help`` for options). It starts its own
nats-server and the ledger as a subprocess (``python -m switchboard.consent``); PostgreSQL
is measured when ``--postgres`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
answers. The last line of output is one JSON object with every figure.

The raw insert baseline writes the rows the ledger writes (a record, and a key for a new
caller) into tables with the ledger's own columns, constraints and indexes, through the
store's own bulk insert and transaction, alternating with the ledger's appends; see
``append_and_raw_rates``. ``*_vs_*`` figures are ledger / raw in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import StreamConfig

from switchboard.consent.ledger.chain import format_time
from switchboard.consent.ledger.ledger import Ledger
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret, Personal, seal
from switchboard.consent.ledger.sql import KEY_TABLE, RECORD_TABLE, SqlStore
from switchboard.contracts import streams
from switchboard.contracts.base import new_id, utcnow
from switchboard.contracts.consent import ConsentDecision, ConsentMode, RecordConsent
from switchboard.contracts.envelope import decode_event
from switchboard.contracts.subjects import Owner, consent_record_subject
from switchboard.devstack.launcher import ServiceProcess, provision
from switchboard.devstack.natsserver import NatsServer
from switchboard.testing.postgres import fresh_schema, reachable

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
Figures = dict[str, Any]


def _command(i: int) -> RecordConsent:
    return RecordConsent(
        call_id=f"bench-{i}",
        decision=ConsentDecision.GRANTED,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_version="ask-2025-01:en",
        command_id=new_id(),
        decided_at=utcnow(),
        caller_number=f"+1415{i % 10_000_000:07d}",
        transcript_excerpt="Yes, you can record this call.",
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _say(text: str) -> None:
    print(text, flush=True)


# -- databases -------------------------------------------------------------------------


RAW_TABLES = {
    "raw_records": "consent_records",
    "raw_keys": "subject_keys",
    "raw_records_only": "consent_records",
}
"""The raw baseline's tables and the ledger table each copies."""


def mirror_tables(store: SqlStore) -> None:
    """The ``RAW_TABLES``: the ledger's tables (same columns, types, constraints and
    indexes) without its triggers, for the raw insert baseline."""
    for raw, table in RAW_TABLES.items():
        if store.backend == "postgresql":
            store._execute(f"CREATE TABLE {raw} (LIKE {table} INCLUDING ALL)")
            continue
        rows = store._query(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('table', 'index') "
            "AND sql IS NOT NULL ORDER BY type DESC",
            (table,),
        )
        for (sql,) in rows:
            store._execute(sql.replace(table, raw))


def _raw_rows(i: int, sealed_size: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A consent record row and a caller key row shaped like the ledger's (same value
    kinds and sizes) for decision ``i``."""
    now = format_time(dt.datetime.now(dt.UTC))
    subject = str(uuid.uuid4())
    record = (
        i,
        str(uuid.uuid4()),
        f"bench-{i}",
        "granted",
        "US-CA",
        "ask",
        "ask-2025-01:en",
        "en",
        "voice",
        now,
        now,
        subject,
        os.urandom(sealed_size),
        os.urandom(32),
        os.urandom(32),
    )
    key = (os.urandom(32).hex(), subject, os.urandom(60), now)
    return record, key


class _Clock:
    """Time spent in the blocks run under ``time()``, per name."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - t


def append_and_raw_rates(db: str, records: int, sync: str) -> Figures:
    """Ledger.append (hashing, sealing, key lookups) without NATS, against plain INSERTs of
    the rows it writes into tables shaped like its own (same columns, types, constraints
    and indexes), through the store's own bulk insert and transactions.

    Batched: 100 decisions per transaction from new callers, so each is a record and a
    caller key (raw: the same two rows). Single: one decision per transaction from a caller
    the ledger already has a key for, so one record (raw: one record row). Records alone,
    100 per transaction, for reference. Ledger and raw transactions alternate, so both
    see the same machine and the same table sizes.

    SQLite pays for a WAL checkpoint in the commit that crosses the threshold (tens of ms,
    more than a batch), so where checkpoints landed decided the ratio from run to run.
    Here SQLite checkpoints only between the two phases, untimed: both sides write the
    same rows, so this leaves out a cost they share (which makes ratios lower, not
    higher)."""
    store = open_store(db, sqlite_sync=sync)
    assert isinstance(store, SqlStore)
    mirror_tables(store)

    def checkpoint() -> None:
        # RESTART: later commits overwrite the WAL file from its start, as after every
        # checkpoint in steady state, instead of growing the file (a costlier fsync).
        if store.backend == "sqlite":
            store._execute("PRAGMA wal_autocheckpoint=0")
            store._query("PRAGMA wal_checkpoint(RESTART)")

    ledger = Ledger(store, LedgerSecret(os.urandom(32)), None)
    commands = [_command(10_000_000 + i) for i in range(records)]
    sample = commands[0]
    personal = Personal(
        caller_number=sample.caller_number, transcript_excerpt=sample.transcript_excerpt
    )
    sealed_size = len(seal(os.urandom(32), sample.command_id, personal))
    made = [_raw_rows(i, sealed_size) for i in range(2 * records + records // 5)]
    clock = _Clock()
    checkpoint()
    for n, start in enumerate(range(0, records, 100)):
        rows = made[start : start + 100]
        keys, raw_records = [k for _, k in rows], [r for r, _ in rows]
        only = [r for r, _ in made[records + start : records + start + 100]]
        for step in (n % 2, 1 - n % 2):  # who goes first alternates
            if step == 0:
                with clock.time("ledger_batch"):
                    ledger.append(commands[start : start + 100])
                continue
            with clock.time("raw_batch"), store.write():
                store.insert_rows("raw_keys", KEY_TABLE, keys)
                store.insert_rows("raw_records", RECORD_TABLE, raw_records)
            with clock.time("raw_records_only"), store.write():
                store.insert_rows("raw_records_only", RECORD_TABLE, only)
    singles = [
        msgspec.structs.replace(c, command_id=str(uuid.uuid4())) for c in commands[: records // 5]
    ]
    checkpoint()
    for n, command in enumerate(singles):
        row = made[2 * records + n][0]
        for step in (n % 2, 1 - n % 2):
            if step == 0:
                with clock.time("ledger_single"):
                    ledger.append([command])
            else:
                with clock.time("raw_single"), store.write():
                    store.insert_rows("raw_records", RECORD_TABLE, [row])
    store.close()
    spent = clock.spent
    return {
        "raw_insert_per_commit_per_s": round(len(singles) / spent["raw_single"]),
        "raw_insert_batch100_per_s": round(records / spent["raw_batch"]),
        "raw_insert_records_only_batch100_per_s": round(records / spent["raw_records_only"]),
        "ledger_append_batch100_per_s": round(records / spent["ledger_batch"]),
        "ledger_append_single_per_s": round(len(singles) / spent["ledger_single"]),
    }


# -- JetStream -------------------------------------------------------------------------


async def raw_jetstream_rates(nc: NATS, messages: int) -> Figures:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCH_RAW", subjects=["bench.raw.>"]))
    body = msgspec.json.encode(_command(0))
    latencies: list[float] = []
    for i in range(min(messages, 2000)):
        t = time.perf_counter()
        await js.publish(f"bench.raw.{i}", body, headers={"Nats-Msg-Id": f"s-{i}"})
        latencies.append(time.perf_counter() - t)
    sequential = len(latencies) / sum(latencies)
    t = time.perf_counter()
    for start in range(0, messages, 100):
        await asyncio.gather(
            *(
                js.publish(f"bench.raw.{i}", body, headers={"Nats-Msg-Id": f"c-{i}"})
                for i in range(start, min(messages, start + 100))
            )
        )
    concurrent = messages / (time.perf_counter() - t)
    await js.delete_stream("BENCH_RAW")
    return {
        "raw_js_publish_sequential_per_s": round(sequential),
        "raw_js_publish_p50_ms": round(_percentile(latencies, 0.5) * 1e3, 3),
        "raw_js_publish_p99_ms": round(_percentile(latencies, 0.99) * 1e3, 3),
        "raw_js_publish_concurrent_per_s": round(concurrent),
    }


class Receipts:
    """Arrival times of receipt events, by command id."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._grew = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        _, payload = decode_event(msg.data)
        self.at.setdefault(payload.command_id, time.perf_counter())
        self._grew.set()

    async def wait(self, count: int, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while len(self.at) < count:
            self._grew.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._grew.wait(), remaining)


async def receipt_latency(nc: NATS, rate: float, seconds: float, offset: int) -> Figures:
    """Open-loop decisions at ``rate``/s; latency from publish to the receipt event."""
    js = nc.jetstream()
    receipts = Receipts()
    sub = await nc.subscribe("sb.evt.consent.recorded.*", cb=receipts.on_msg)
    count = int(rate * seconds)
    sent: dict[str, float] = {}
    start = time.perf_counter()

    async def send(i: int) -> None:
        cmd = _command(offset + i)
        sent[cmd.command_id] = time.perf_counter()
        await js.publish(
            consent_record_subject(cmd.call_id),
            msgspec.json.encode(cmd),
            headers={"Nats-Msg-Id": cmd.command_id},
        )

    tasks = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)
    await receipts.wait(count, timeout=30)
    await sub.unsubscribe()
    latencies = [(receipts.at[k] - t) * 1e3 for k, t in sent.items() if k in receipts.at]
    return {
        "decisions": count,
        "receipts": len(latencies),
        "achieved_rate_per_s": round(count / (time.perf_counter() - start), 1),
        "receipt_p50_ms": round(_percentile(latencies, 0.5), 2),
        "receipt_p99_ms": round(_percentile(latencies, 0.99), 2),
        "receipt_max_ms": round(max(latencies), 2),
        "receipt_mean_ms": round(statistics.fmean(latencies), 2),
    }


async def ingest_throughput(nc: NATS, commands: int, offset: int) -> Figures:
    """Publish a burst as fast as the stream takes it; time until the last receipt."""
    js = nc.jetstream()
    receipts = Receipts()
    sub = await nc.subscribe("sb.evt.consent.recorded.*", cb=receipts.on_msg)
    batch = [_command(offset + i) for i in range(commands)]
    start = time.perf_counter()
    for first in range(0, commands, 100):
        await asyncio.gather(
            *(
                js.publish(
                    consent_record_subject(c.call_id),
                    msgspec.json.encode(c),
                    headers={"Nats-Msg-Id": c.command_id},
                )
                for c in batch[first : first + 100]
            )
        )
    published = time.perf_counter() - start
    await receipts.wait(commands, timeout=120)
    await sub.unsubscribe()
    done = max(receipts.at.values()) - start
    return {
        "ingest_commands": commands,
        "ingest_receipts": len(receipts.at),
        "ingest_per_s": round(len(receipts.at) / done),
        "ingest_publish_per_s": round(commands / published),
    }


async def wait_consumer(nc: NATS) -> None:
    js = nc.jetstream()
    for _ in range(200):
        try:
            await js.consumer_info(streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER)
            return
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the ledger's consumer never appeared")


async def service_figures(
    nats_url: str, db: str, sync: str, root: Path, args: argparse.Namespace
) -> Figures:
    env = {
        "SB_NATS_URL": nats_url,
        "SB_LEDGER_DB": db,
        "SB_LEDGER_SQLITE_SYNC": sync,
        "SB_LEDGER_SECRET_FILE": str(root / "secret.key"),
        "SB_CHECKPOINT_KEY_FILE": str(root / "checkpoint.pem"),
        "SB_LOG_LEVEL": "WARNING",
    }
    process = ServiceProcess(
        "switchboard.consent", Owner.CONSENT.value, env=env, log_path=root / "consent.log"
    ).start()
    nc = await nats.connect(nats_url)
    try:
        await process.ready(nats_url)
        await wait_consumer(nc)
        await receipt_latency(nc, args.rate, 1.0, offset=0)  # warm-up
        figures = await receipt_latency(nc, args.rate, args.seconds, offset=100_000)
        figures.update(await ingest_throughput(nc, args.burst, offset=200_000))
    finally:
        await nc.close()
        process.stop()
    return figures


async def backend_figures(
    name: str, db: str, nats_url: str, root: Path, args: argparse.Namespace, sync: str = "full"
) -> Figures:
    _say(f"[{name}] raw inserts and ledger appends without NATS ...")
    figures: Figures = {"sqlite_sync": sync} if name.startswith("sqlite") else {}
    figures.update(append_and_raw_rates(db, args.raw_rows, sync))
    _say(f"[{name}] the service at {args.rate:g} decisions/s, then a burst ...")
    if name == "postgresql":
        with fresh_schema(args.postgres) as fresh:
            figures.update(await service_figures(nats_url, fresh, sync, root, args))
    else:
        service_db = str(root / f"service-{name}.db")
        figures.update(await service_figures(nats_url, service_db, sync, root, args))
    figures["ingest_vs_raw_insert_per_commit"] = round(
        figures["ingest_per_s"] / figures["raw_insert_per_commit_per_s"], 2
    )
    figures["ingest_vs_raw_insert_batch100"] = round(
        figures["ingest_per_s"] / figures["raw_insert_batch100_per_s"], 2
    )
    figures["ledger_append_vs_raw_insert_batch100"] = round(
        figures["ledger_append_batch100_per_s"] / figures["raw_insert_batch100_per_s"], 2
    )
    figures["ledger_append_vs_raw_insert_records_only_batch100"] = round(
        figures["ledger_append_batch100_per_s"] / figures["raw_insert_records_only_batch100_per_s"],
        2,
    )
    figures["ledger_append_single_vs_raw_insert_per_commit"] = round(
        figures["ledger_append_single_per_s"] / figures["raw_insert_per_commit_per_s"], 2
    )
    _say(f"[{name}] {json.dumps(figures)}")
    return figures


async def run(args: argparse.Namespace) -> Figures:
    out: Figures = {"rate_target_per_s": args.rate, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp, NatsServer() as server:
        root = Path(tmp)
        provision(server.url)
        nc = await nats.connect(server.url)
        try:
            out["jetstream"] = await raw_jetstream_rates(nc, args.raw_messages)
        finally:
            await nc.close()
        _say(f"[jetstream] {out['jetstream']}")
        out["sqlite"] = await backend_figures(
            "sqlite", str(root / "raw.db"), server.url, root, args
        )
        out["sqlite_sync_normal"] = await backend_figures(
            "sqlite_sync_normal", str(root / "raw-normal.db"), server.url, root, args, "normal"
        )
        if reachable(args.postgres):
            with fresh_schema(args.postgres) as dsn:
                out["postgresql"] = await backend_figures("postgresql", dsn, server.url, root, args)
        else:
            out["postgresql"] = {"skipped": f"{args.postgres} does not answer"}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consent_bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="decisions per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency phase length")
    parser.add_argument("--burst", type=int, default=5000, help="commands in the ingest burst")
    parser.add_argument("--raw-rows", type=int, default=2000)
    parser.add_argument("--raw-messages", type=int, default=10_000)
    parser.add_argument("--postgres", default=os.environ.get("SB_BENCH_POSTGRES", DEFAULT_POSTGRES))
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args))
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
