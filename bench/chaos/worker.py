"""One voice worker process of the chaos run: ``python -m bench.chaos.worker``.

The run starts several of these, as a deployment runs voice worker processes (livekit-agents
runs each call in a job process of its own); each plays its share of the calls through the
real agent graph and clients, on its own NATS connection, with its own garbage collector.
Carrying every call in the one process that also drives the callers made that process's
collections (seconds long with sixty calls' objects on a loaded machine) count as the
callers' silence.

It prints one line per finished call (the run's progress) and writes what it saw to
``--out``: the calls' facts, the consent commands JetStream acknowledged, and the process's
event-loop lag, collector pauses and peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
from pathlib import Path

import msgspec

from bench.chaos.calls import AckedCommands, CallDriver, CallFacts
from bench.measure import GcPauses, Samples, loop_lag, peak_rss_mb
from bench.voice_bench import quiet_logs
from switchboard.simulation import scenario as scenarios
from switchboard.voice import collector
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.wiring import Bus, open_bus


class WorkerResult(msgspec.Struct, frozen=True):
    """What one worker process saw."""

    facts: list[CallFacts]
    acked: dict[str, str]
    """Consent command id → call id, for each command JetStream acknowledged."""
    published: dict[str, str]
    """Every consent command id sent, acknowledged or not → call id."""
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    gc_pause_max_ms: float
    peak_rss_mb: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.worker")
    parser.add_argument("--url", required=True, help="the run's nats-server")
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--scenarios", type=Path, required=True)
    parser.add_argument("--max-silence", type=float, required=True)
    parser.add_argument("--log-level", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--log", type=Path, required=True, help="the worker's JSON log")
    parser.add_argument("--dump", type=Path, required=True, help="bad calls' reports")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


async def play(args: argparse.Namespace) -> WorkerResult:
    settings = msgspec.structs.replace(
        VoiceSettings(), nats_url=args.url, instance=args.instance, log_level=args.log_level
    )
    plays = [scenarios.load(path) for path in scenarios.discover(args.scenarios)]
    opened = await open_bus(settings)
    commands = AckedCommands(opened.nc)
    bus = Bus(
        nc=opened.nc,
        js=commands,
        source=opened.source,
        events=opened.events,
        outbox=opened.outbox,
    )
    try:
        collector.prepare_for_calls()

        def on_done(facts: CallFacts) -> None:
            print(facts.ending, flush=True)

        driver = CallDriver(
            bus,
            settings,
            plays,
            random.Random(args.seed),
            args.concurrency,
            on_done,
            dump=args.dump,
            max_silence_s=args.max_silence,
        )
        stop = asyncio.Event()
        lag: list[float] = []
        lag_watch = asyncio.create_task(loop_lag(stop, lag))
        with GcPauses() as pauses:
            calls = await driver.run(args.calls)
        stop.set()
        await lag_watch
        await bus.events.settle()
        return WorkerResult(
            facts=calls,
            acked=commands.acked,
            published=commands.published,
            loop_lag_p99_ms=round(Samples(lag).percentile(99) * 1000, 1),
            loop_lag_max_ms=round(max(lag, default=0.0) * 1000, 1),
            gc_pause_max_ms=pauses.figures()["gc_pause_max_ms"],
            peak_rss_mb=round(peak_rss_mb(), 1),
        )
    finally:
        await bus.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    quiet_logs(args.log_level, args.log)
    result = asyncio.run(play(args))
    args.out.write_bytes(msgspec.json.encode(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
