"""``python -m bench.chaos --calls N``: see the package docstring. Progress goes to stderr;
the last line on stdout is the JSON of the figures and checks."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import nats

from bench.chaos.audit import ConsentAudit, TransferAudit, audit_consent, audit_transfers
from bench.chaos.calls import (
    CALLBACK,
    FAILED,
    HUNG,
    HUNG_UP,
    SERVED,
    TRANSFERRED,
    CallFacts,
    SentCommands,
)
from bench.chaos.events import EventAudit, audit_events, stored_events
from bench.chaos.monkey import ChaosMonkey
from bench.chaos.stack import KILLABLE, ChaosStack, chaos_stack
from bench.chaos.worker import WorkerResult
from switchboard.contracts import streams
from switchboard.runtime.bus import stream_config
from switchboard.testing.postgres import DEFAULT_DSN

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
MAX_SILENCE_S = 5.0
"""The longest a caller may wait for the agents, hold excluded (the worker's own timeouts
for a service that does not answer are at most 3 s: the consent receipt)."""
PROGRESS_EVERY = 100
CALLS_PER_PROCESS = 10
"""Calls in progress per voice worker process by default (a deployment's worker takes
``SB_MAX_CALLS_PER_WORKER`` = 25 jobs, each in a process of its own)."""
EXAMPLES = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description="Simulated calls while the services crash."
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=40, help="calls in progress at once")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help=f"voice worker processes (default: one per {CALLS_PER_PROCESS} calls at once)",
    )
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--fault-every", type=float, default=4.0, help="mean s between faults")
    parser.add_argument("--down", type=float, default=1.0, help="most s a killed service is down")
    parser.add_argument(
        "--postgres", default=os.environ.get("SB_BENCH_POSTGRES", DEFAULT_DSN), help="server DSN"
    )
    parser.add_argument("--max-silence", type=float, default=MAX_SILENCE_S)
    parser.add_argument(
        "--duplicate-window",
        type=float,
        default=0.0,
        help="s; shorten SB_EVENTS's duplicate window (default: the contract's 120 s) so "
        "re-published copies are stored and the consumer's (source, id) dedupe is what counts",
    )
    parser.add_argument("--log-level", default="WARNING", help="worker and services")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this directory")
    return parser.parse_args(argv)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` as evenly as can be (the first ones one larger)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def play(args: argparse.Namespace, stack: ChaosStack, rng: random.Random) -> dict[str, Any]:
    await stack.start()
    wanted = args.processes or -(-args.concurrency // CALLS_PER_PROCESS)
    processes = max(1, min(wanted, args.calls, args.concurrency))
    if args.duplicate_window > 0:
        admin = await nats.connect(stack.url)
        try:
            config = stream_config(streams.EVENTS)
            config.duplicate_window = args.duplicate_window
            await admin.jetstream().update_stream(config)
        finally:
            await admin.close()
    # Faults draw from their own generator: the calls' order does not move them.
    monkey = ChaosMonkey(stack, random.Random(args.seed + 1), args.fault_every, args.down)
    stop = asyncio.Event()
    faults = asyncio.create_task(monkey.run(stop))
    supervisor = asyncio.create_task(stack.supervise(stop))
    started = time.monotonic()
    done = 0

    async def worker(index: int, calls: int, concurrency: int) -> WorkerResult:
        nonlocal done
        out = stack.workdir / f"worker-{index}.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.chaos.worker",
            *("--url", stack.url, "--calls", str(calls), "--concurrency", str(concurrency)),
            *("--seed", str(rng.randrange(2**31)), "--scenarios", str(SCENARIOS)),
            *("--max-silence", str(args.max_silence), "--log-level", args.log_level),
            *("--instance", f"voice-chaos-{index}", "--out", str(out)),
            *("--log", str(stack.workdir / f"voice-{index}.log")),
            *("--dump", str(stack.workdir / "calls")),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        async for _ in proc.stdout:
            done += 1
            if done % PROGRESS_EVERY == 0:
                progress(
                    f"{done} calls, {time.monotonic() - started:.0f} s, kills "
                    f"{dict(stack.kills)}, nats {stack.nats_restarts}, pg {stack.pg_cuts}"
                )
        if (code := await proc.wait()) != 0:
            raise RuntimeError(f"chaos worker {index} exited {code}")
        return msgspec.json.decode(out.read_bytes(), type=WorkerResult)

    try:
        results = await asyncio.gather(
            *(
                worker(i, calls, concurrency)
                for i, (calls, concurrency) in enumerate(
                    zip(
                        shares(args.calls, processes),
                        shares(args.concurrency, processes),
                        strict=True,
                    )
                )
            )
        )
    finally:
        duration = time.monotonic() - started
        stop.set()
        await faults
        await supervisor
    await stack.restart_exited()  # one that failed at the very end is counted too
    calls = [facts for r in results for facts in r.facts]
    commands = SentCommands(
        acked={k: v for r in results for k, v in r.acked.items()},
        published={k: v for r in results for k, v in r.published.items()},
    )
    nc = await nats.connect(stack.url)
    try:
        consent = await audit_consent(stack, commands, calls)
        transfers = await audit_transfers(nc, calls)
        events = audit_events(await stored_events(nc), [c.call_id for c in calls])
    finally:
        await nc.close()
    return figures(args, stack, calls, consent, transfers, events, duration) | {
        "processes": processes,
        # Each worker process carries its calls and their scripted callers: when its loop
        # stalls, the silences it measures include the stall.
        "loop_lag_p99_ms": max(r.loop_lag_p99_ms for r in results),
        "loop_lag_max_ms": max(r.loop_lag_max_ms for r in results),
        "gc_pause_max_ms": max(r.gc_pause_max_ms for r in results),
        "peak_rss_mb_per_process": max(r.peak_rss_mb for r in results),
    }


def figures(
    args: argparse.Namespace,
    stack: ChaosStack,
    calls: list[CallFacts],
    consent: ConsentAudit,
    transfers: TransferAudit,
    events: EventAudit,
    duration: float,
) -> dict[str, Any]:
    endings = {e: sum(1 for c in calls if c.ending == e) for e in (SERVED, TRANSFERRED, CALLBACK)}
    hung_up = sum(1 for c in calls if c.ending == HUNG_UP)
    bad = [c for c in calls if c.ending in (FAILED, HUNG)]
    silent = [c for c in calls if c.silence_s > args.max_silence]
    chain_ok = consent.chain is not None and consent.chain.ok
    checks = {
        "every call ended": not bad and len(calls) == args.calls,
        "no service exited by itself": not stack.exits,
        "no call silent too long": not silent,
        "every acked consent command in the ledger": not consent.missing,
        "no duplicate ledger record": consent.duplicates == 0 and consent.strangers == 0,
        "no dead letter": consent.dead_letters == 0,
        "chain verifies": chain_ok,
        "no recording without a receipt": not consent.recordings_without_receipt,
        "every transfer has a terminal event": not transfers.without_terminal,
        "no leg left at the bridge": not transfers.legs_left,
        "one event per fact by (source, id)": not events.facts_twice
        and not events.identity_conflicts,
        "every call has one call.ended": not events.calls_without_end,
        "every call's voice events numbered 1..n": not events.calls_with_gaps,
    }
    return {
        "seed": args.seed,
        "duplicate_window_s": args.duplicate_window or streams.EVENTS.duplicate_window_s,
        "calls": len(calls),
        "concurrency": args.concurrency,
        **endings,
        "caller_hung_up": hung_up,
        "failed_or_hung": len(bad),
        "scenario_expectations_met": sum(1 for c in calls if c.expectations_met),
        "carrier_unscripted": sum(1 for c in calls if not c.carrier_scripted),
        "kills": {name: stack.kills[name] for name in KILLABLE},
        "exits": {name: stack.exits[name] for name in stack.services},
        "exit_codes": stack.exit_codes,
        "nats_restarts": stack.nats_restarts,
        "pg_cuts": stack.pg_cuts,
        "pg_backends_terminated": stack.pg_backends_terminated,
        "max_silence_s": max((c.silence_s for c in calls), default=0.0),
        "calls_silent_over_limit": len(silent),
        "max_hold_s": max((c.hold_s for c in calls), default=0.0),
        "max_call_s": round(max((c.duration_s for c in calls), default=0.0), 2),
        "consent_commands_acked": consent.acked,
        "ledger_records": consent.records,
        "missing": len(consent.missing),
        "duplicates": consent.duplicates,
        "strangers": consent.strangers,
        "dead_letters": consent.dead_letters,
        "chain_ok": chain_ok,
        "chain_records_checked": consent.chain.records_checked if consent.chain else 0,
        "recordings_started": sum(len(c.recordings) for c in calls),
        "recordings_without_receipt": len(consent.recordings_without_receipt),
        "transfers": transfers.transfers,
        "transfers_without_terminal": len(transfers.without_terminal),
        "calls_with_legs_left": len(transfers.legs_left),
        "events_stored": events.stored,
        "events_unique": events.unique,
        "event_copies_dropped": events.copies_dropped,
        "voice_events": events.voice_events,
        "facts_twice": len(events.facts_twice),
        "identity_conflicts": len(events.identity_conflicts),
        "calls_without_end": len(events.calls_without_end),
        "calls_with_sequence_gaps": len(events.calls_with_gaps),
        "duration_s": round(duration, 1),
        "calls_per_min": round(len(calls) / duration * 60, 1) if duration else 0.0,
        "checks": checks,
        "ok": all(checks.values()),
        "bad_by_scenario": dict(Counter(f"{c.scenario}:{c.ending}" for c in bad)),
        "examples": {
            "failed": [msgspec.to_builtins(c) for c in bad[:EXAMPLES]],
            "silent": [msgspec.to_builtins(c) for c in silent[:EXAMPLES]],
            "missing_commands": consent.missing[:EXAMPLES],
            "transfers_without_terminal": transfers.without_terminal[:EXAMPLES],
            "legs_left": transfers.legs_left[:EXAMPLES],
            "facts_twice": events.facts_twice[:EXAMPLES],
            "identity_conflicts": events.identity_conflicts[:EXAMPLES],
            "calls_without_end": events.calls_without_end[:EXAMPLES],
            "calls_with_sequence_gaps": events.calls_with_gaps[:EXAMPLES],
            "recordings_without_receipt": consent.recordings_without_receipt[:EXAMPLES],
            "chain_error": consent.chain_error or (consent.chain.problem if consent.chain else ""),
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (a timeout, Ctrl-C's cousin) unwinds like an exception: the services and
    # nats-server are stopped and the database schema dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    progress(f"seed {args.seed}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sb-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    with chaos_stack(workdir, args.postgres, args.log_level) as stack:
        result = asyncio.run(play(args, stack, rng))
    result["logs"] = str(workdir)
    line = json.dumps(result)
    (workdir / "result.json").write_text(line + "\n")
    print(line, flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
