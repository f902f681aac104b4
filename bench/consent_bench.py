"""Consent ledger benchmark: decision-to-receipt latency and append throughput per backend,
next to the raw database insert rate and the raw JetStream publish rate of the same run.

Run: ``python -m bench.consent_bench`` (``--help`` for options). It starts its own
nats-server and the ledger as a subprocess (``python -m switchboard.consent``); PostgreSQL
is measured when ``--postgres`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
answers. The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import nats
import psycopg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import StreamConfig

from switchboard.consent.ledger.ledger import Ledger
from switchboard.consent.ledger.open import open_store
from switchboard.consent.ledger.sealing import LedgerSecret
from switchboard.contracts import streams
from switchboard.contracts.consent import ConsentDecision, ConsentMode, RecordConsent
from switchboard.contracts.envelope import decode_event
from switchboard.contracts.subjects import consent_record_subject
from switchboard.runtime.launcher import ServiceProcess
from switchboard.runtime.natsserver import NatsServer

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
Figures = dict[str, Any]


def _command(i: int) -> RecordConsent:
    return RecordConsent(
        call_id=f"bench-{i}",
        decision=ConsentDecision.GRANTED,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_version="ask-2025-01:en",
        caller_number=f"+1415{i % 10_000_000:07d}",
        transcript_excerpt="Yes, you can record this call.",
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _say(text: str) -> None:
    print(text, flush=True)


# -- databases -------------------------------------------------------------------------


@contextmanager
def postgres_schema(server_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in server_dsn else "?"
    try:
        yield f"{server_dsn}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def postgres_reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def raw_insert_rates(db: str, rows: int, sync: str) -> Figures:
    """Plain INSERTs of ledger-sized rows: committed one by one, and 100 per transaction."""
    store = open_store(db, sqlite_sync=sync)
    run: Callable[[str, tuple[Any, ...]], None] = store._execute  # type: ignore[attr-defined]
    blob = os.urandom(120)
    run(
        "CREATE TABLE raw_inserts (seq BIGINT PRIMARY KEY, command_id TEXT NOT NULL UNIQUE, "
        "call_id TEXT NOT NULL, body TEXT NOT NULL, sealed BYTEA, hash BYTEA NOT NULL)".replace(
            "BYTEA", "BLOB" if store.backend == "sqlite" else "BYTEA"
        ),
        (),
    )
    sql = "INSERT INTO raw_inserts VALUES (?, ?, ?, ?, ?, ?)"

    def row(i: int) -> tuple[Any, ...]:
        return (i, str(uuid.uuid4()), f"call-{i}", "granted US-CA ask ask-2025-01:en", blob, blob)

    t = time.perf_counter()
    for i in range(rows):
        with store.write():
            run(sql, row(i))
    single = rows / (time.perf_counter() - t)
    t = time.perf_counter()
    for start in range(rows, 3 * rows, 100):
        with store.write():
            store._execute_many(sql, [row(i) for i in range(start, start + 100)])  # type: ignore[attr-defined]
    batched = 2 * rows / (time.perf_counter() - t)
    store.close()
    return {
        "raw_insert_per_commit_per_s": round(single),
        "raw_insert_batch100_per_s": round(batched),
    }


def ledger_append_rate(db: str, records: int, sync: str) -> Figures:
    """Ledger.append (hashing, sealing, key lookups) without NATS, 100 per transaction."""
    store = open_store(db, sqlite_sync=sync)
    ledger = Ledger(store, LedgerSecret(os.urandom(32)), None)
    commands = [_command(10_000_000 + i) for i in range(records)]
    t = time.perf_counter()
    for start in range(0, records, 100):
        ledger.append(commands[start : start + 100])
    batched = records / (time.perf_counter() - t)
    singles = commands[: records // 5]
    fresh = [msgspec.structs.replace(c, command_id=str(uuid.uuid4())) for c in singles]
    t = time.perf_counter()
    for c in fresh:
        ledger.append([c])
    single = len(fresh) / (time.perf_counter() - t)
    store.close()
    return {
        "ledger_append_batch100_per_s": round(batched),
        "ledger_append_single_per_s": round(single),
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
        "switchboard.consent", "consent", env=env, log_path=root / "consent.log"
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
    figures.update(raw_insert_rates(db, args.raw_rows, sync))
    figures.update(ledger_append_rate(db, args.raw_rows, sync))
    _say(f"[{name}] the service at {args.rate:g} decisions/s, then a burst ...")
    if name == "postgresql":
        with postgres_schema(args.postgres) as fresh:
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
    _say(f"[{name}] {json.dumps(figures)}")
    return figures


async def run(args: argparse.Namespace) -> Figures:
    out: Figures = {"rate_target_per_s": args.rate, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp, NatsServer() as server:
        root = Path(tmp)
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
        if postgres_reachable(args.postgres):
            with postgres_schema(args.postgres) as dsn:
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
