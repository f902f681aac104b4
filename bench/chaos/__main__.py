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

from bench.chaos.audit import ConsentAudit, TransferAudit, audit_consent, audit_transfers
from bench.chaos.calls import (
    CALLBACK,
    FAILED,
    HUNG,
    HUNG_UP,
    SERVED,
    TRANSFERRED,
    AckedCommands,
    CallDriver,
    CallFacts,
)
from bench.chaos.events import EventAudit, audit_events, stored_events
from bench.chaos.monkey import ChaosMonkey
from bench.chaos.stack import KILLABLE, ChaosStack, chaos_stack
from bench.measure import GcPauses, Samples, loop_lag, peak_rss_mb
from bench.voice_bench import quiet_logs
from switchboard.contracts import streams
from switchboard.runtime.bus import stream_config
from switchboard.simulation import scenario as scenarios
from switchboard.testing.postgres import DEFAULT_DSN
from switchboard.voice import collector
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.wiring import Bus, open_bus

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
MAX_SILENCE_S = 5.0
"""The longest a caller may wait for the agents, hold excluded (the worker's own timeouts
for a service that does not answer are at most 3 s: the consent receipt)."""
PROGRESS_EVERY = 100
EXAMPLES = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description="Simulated calls while the services crash."
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=40, help="calls in progress at once")
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


async def play(args: argparse.Namespace, stack: ChaosStack, rng: random.Random) -> dict[str, Any]:
    await stack.start()
    settings = msgspec.structs.replace(
        VoiceSettings(), nats_url=stack.url, instance="voice-chaos", log_level=args.log_level
    )
    plays = [scenarios.load(path) for path in scenarios.discover(SCENARIOS)]
    bus = await open_bus(settings)
    if args.duplicate_window > 0:
        config = stream_config(streams.EVENTS)
        config.duplicate_window = args.duplicate_window
        await bus.js.update_stream(config)
    commands = AckedCommands(bus.nc)
    bus = Bus(nc=bus.nc, js=commands, source=bus.source, events=bus.events, outbox=bus.outbox)
    try:
        collector.prepare_for_calls()
        # Faults draw from their own generator: the calls' order does not move them.
        monkey = ChaosMonkey(stack, random.Random(args.seed + 1), args.fault_every, args.down)
        stop = asyncio.Event()
        faults = asyncio.create_task(monkey.run(stop))
        supervisor = asyncio.create_task(stack.supervise(stop))
        done: list[CallFacts] = []
        started = time.monotonic()
        lag: list[float] = []
        lag_watch = asyncio.create_task(loop_lag(stop, lag))

        def on_done(facts: CallFacts) -> None:
            done.append(facts)
            if len(done) % PROGRESS_EVERY == 0:
                progress(
                    f"{len(done)} calls, {time.monotonic() - started:.0f} s, kills "
                    f"{dict(stack.kills)}, nats {stack.nats_restarts}, pg {stack.pg_cuts}"
                )

        driver = CallDriver(
            bus,
            settings,
            plays,
            rng,
            args.concurrency,
            on_done,
            dump=stack.workdir / "calls",
            max_silence_s=args.max_silence,
        )
        with GcPauses() as pauses:
            calls = await driver.run(args.calls)
        duration = time.monotonic() - started
        stop.set()
        await faults
        await supervisor
        await lag_watch
        await stack.restart_exited()  # one that failed at the very end is counted too
        await bus.events.settle()
        consent = await audit_consent(stack, commands, calls)
        transfers = await audit_transfers(bus.nc, calls)
        events = audit_events(await stored_events(bus.nc), [c.call_id for c in calls])
        return figures(args, stack, calls, consent, transfers, events, duration) | {
            # This process is the worker and the callers: when its loop stalls, silences
            # measured here include the stall.
            "loop_lag_p99_ms": round(Samples(lag).percentile(99) * 1000, 1),
            "loop_lag_max_ms": round(max(lag, default=0.0) * 1000, 1),
            "gc_pause_max_ms": pauses.figures()["gc_pause_max_ms"],
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    finally:
        await bus.close()


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
    quiet_logs(args.log_level, workdir / "voice.log")
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
