"""Voice worker benchmark: what event publishing adds to a turn, and 200 concurrent calls.

``python -m bench.voice_bench`` starts its own nats-server and the three backend services
as subprocesses (the consent ledger on SQLite in a temp dir, the router, the sip-bridge
with its simulated carrier), then plays scripted calls from ``scenarios/`` through the
real agent graph in this one process, which is the voice worker: text mode, the rules
brain, one ``session.run`` per caller turn, via the scenario runner.

1. Overhead: the same calls one after another, alternately with the real event publisher
   and with publishing replaced by a no-op (the baseline, same run, same machine). A turn
   is timed from the caller's text to the end of ``session.run`` (turn 0 is the opening:
   ``CallStarted``, the consent policy and the greeting). Each script is played in both
   modes back to back (which goes first alternates by round); the difference of a pair's
   mean turn time is what publishing added per turn, reported as the mean over all pairs
   with a 95 % confidence interval, next to the p50/p99 of both modes. Between rounds,
   raw ``EventPublisher.publish`` calls (one JetStream ack each) and the worker's own
   ``CallEvents.publish`` (written at once, acknowledged in the background) are timed;
   times the worker's events per turn they give estimates to check the difference
   against. DESIGN.md's target: publishing adds under 1 ms per turn (met when the upper
   end of the interval is under 1 ms).
2. Concurrency: ``--calls`` (200) calls in this one process. They start over ``--ramp``
   seconds (each plays its opening and greeting, then waits for its caller); once all are
   in progress, the callers talk, pausing 0 to 2 x ``--think`` seconds before each turn
   (people take seconds to answer, and a spoken reply takes seconds to play; with no
   pause a text-mode call is over in a few hundred ms). Figures: calls completed and
   failed, whether every call's expectations passed, distinct call ids, per-turn latency,
   wall time, calls in progress, the worker's CPU per turn, the CPU share of every
   process, peak RSS of this process, garbage-collector pauses and event-loop lag (the
   worst delay of a 10 ms timer).

This process applies :func:`switchboard.voice.collector.prepare_for_calls` after its
warm-up, as the worker does before it takes calls; ``--default-gc`` keeps CPython's
collector settings instead, to see what they cost.

The default scripts are the seed's paths without a human transfer (consent declined and
support, escalation to the AI manager, the intake task group with "go back", consent
revoked mid-call), so the sip-bridge's dial rate limit (1/s, burst 5) is not what is
measured. ``--with-transfers`` adds the three transfer scripts and raises the bridge's
caps for the run (``SB_TRANSFER_CPS``, ``SB_TRANSFER_BURST``, ``SB_TRANSFER_MAX_CONCURRENT``).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from switchboard.contracts.base import Message
from switchboard.contracts.call import CallStarted
from switchboard.contracts.subjects import Owner
from switchboard.devstack.launcher import BACKENDS, ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.logs import configure_logging
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.report import Report
from switchboard.simulation.runner import Probe, run_scenario
from switchboard.voice import collector, logfilter
from switchboard.voice.clients.events import CallEvents
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.wiring import Bus, open_bus

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
WITHOUT_TRANSFER = (
    "b_consent_declined_support_resolved.toml",
    "c_escalation_in_first_sentence.toml",
    "d_intake_go_back_fix_email.toml",
    "f_consent_revoked_mid_call.toml",
)
WITH_TRANSFER = (
    "a_consent_billing_manager_transfer.toml",
    "e1_transfer_busy_then_answered.toml",
    "e2_transfer_all_fail_callback.toml",
)
EVENT_CHECKS = ("events in order", "callback", "transfer states")
"""Report checks that read the worker's own events, which the no-op baseline does not
publish (``no <event>`` checks are event checks too)."""
TARGET_OVERHEAD_MS = 1.0
TARGET_CALLS = 200
LAG_TICK_S = 0.010


class NullEvents:
    """The baseline: an event sink that publishes nothing."""

    async def publish(self, payload: Message) -> str | None:
        return None

    async def settle(self) -> None:
        return None


NULL_EVENTS = NullEvents()


@dataclass
class Samples:
    """Durations in seconds."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.values)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def ms(self, p: float) -> float:
        return round(self.percentile(p) * 1000, 3)

    def mean_ms(self) -> float:
        return round(statistics.fmean(self.values) * 1000, 3)

    def line(self) -> str:
        return (
            f"p50 {self.ms(50):7.2f} ms  p99 {self.ms(99):7.2f} ms  mean {self.mean_ms():7.2f} ms"
            f"  n={len(self.values)}"
        )


@dataclass
class Mode:
    """One side of the overhead comparison."""

    name: str
    events: NullEvents | None
    turns: Samples = field(default_factory=Samples)
    by_turn: dict[tuple[str, int], Samples] = field(default_factory=dict)
    """Turn durations per (scenario, turn number), for the paired comparison."""
    calls: int = 0
    passed: int = 0
    events_in_turns: int = 0

    def probe(self, scenario: str) -> Probe:
        def on_turn(number: int, seconds: float) -> None:
            self.turns.add(seconds)
            self.by_turn.setdefault((scenario, number), Samples()).add(seconds)

        return Probe(on_turn=on_turn, events=self.events)


def events_in_turns(report: Report, source: str) -> int:
    """Events this worker published during the call's turns: all of its own (the services
    publish the others) but ``call.ended``, which goes out after the last turn."""
    return sum(1 for e in report.events if e.source == source and e.kind != "call.ended")


def behaviour_ok(report: Report) -> bool:
    """Every check that does not read the worker's own events passed, without errors."""
    return not report.errors and all(
        c.ok for c in report.checks if c.name not in EVENT_CHECKS and not c.name.startswith("no ")
    )


def failures(report: Report) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.checks if not c.ok] + report.errors


async def publish_cost(bus: Bus, count: int, raw: Samples, call: Samples, tag: str) -> None:
    """``count`` sequential ``EventPublisher.publish`` calls, each waiting for its ack, then
    ``count`` ``CallEvents.publish`` calls (what a turn waits for: the write, not the ack)
    and the wait until those are stored."""
    events = CallEvents(bus.events)
    for out, publish in ((raw, bus.events.publish), (call, events.publish)):
        for i in range(count):
            event = CallStarted(
                call_id=f"bench-publish-{tag}-{i}", room="bench", caller_number=None, trunk="main"
            )
            started = time.perf_counter()
            await publish(event)
            out.add(time.perf_counter() - started)
    await events.settle()


async def overhead(
    bus: Bus, settings: VoiceSettings, plays: list[scenarios.Scenario], rounds: int
) -> dict[str, Any]:
    """Each round plays every script once per mode, alternating which mode goes first.

    The collector runs between calls, not during them: one young collection takes tens of
    ms and would land in a random turn of either mode, a noise far larger than the cost
    measured here (part 2 measures the collector's pauses under load).
    """
    gc.disable()
    try:
        return await _overhead(bus, settings, plays, rounds)
    finally:
        gc.enable()


async def _overhead(
    bus: Bus, settings: VoiceSettings, plays: list[scenarios.Scenario], rounds: int
) -> dict[str, Any]:
    real, null = Mode("real", None), Mode("no-op", NULL_EVENTS)
    publish, call_publish = Samples(), Samples()
    pairs: list[float] = []  # per call pair (same script and round): real - no-op, per turn
    for index in range(rounds):
        order = (real, null) if index % 2 == 0 else (null, real)
        for scenario in plays:
            spent: dict[str, float] = {}
            for mode in order:
                before = len(mode.turns.values)
                report = await run_scenario(
                    scenario, bus, settings, probe=mode.probe(scenario.name)
                )
                played = mode.turns.values[before:]
                spent[mode.name] = sum(played) / len(played)
                gc.collect()
                mode.calls += 1
                if mode is real:
                    mode.passed += report.ok
                    mode.events_in_turns += events_in_turns(report, bus.source)
                    if not report.ok:
                        print(f"  real call failed: {scenario.name}: {failures(report)}")
                else:
                    mode.passed += behaviour_ok(report)
            pairs.append(spent[real.name] - spent[null.name])
        await publish_cost(bus, 100, publish, call_publish, str(index))
        print(
            f"overhead round {index + 1}/{rounds}: real {real.turns.line()}\n"
            f"{'':>22}no-op {null.turns.line()}",
            flush=True,
        )
    by_turn = [
        statistics.median(real.by_turn[key].values) - statistics.median(samples.values)
        for key, samples in null.by_turn.items()
        if key in real.by_turn
    ]
    turns_per_call = len(real.turns.values) / real.calls
    events_per_turn = real.events_in_turns / len(real.turns.values)
    diff_p50 = real.turns.ms(50) - null.turns.ms(50)
    diff_mean = real.turns.mean_ms() - null.turns.mean_ms()
    paired_mean = statistics.fmean(pairs) * 1000
    half_ci = 1.96 * statistics.stdev(pairs) / len(pairs) ** 0.5 * 1000
    return {
        "overhead_calls_per_mode": real.calls,
        "overhead_turns_per_mode": len(real.turns.values),
        "real_turn_p50_ms": real.turns.ms(50),
        "real_turn_p99_ms": real.turns.ms(99),
        "real_turn_mean_ms": real.turns.mean_ms(),
        "noop_turn_p50_ms": null.turns.ms(50),
        "noop_turn_p99_ms": null.turns.ms(99),
        "noop_turn_mean_ms": null.turns.mean_ms(),
        "publishing_adds_p50_ms": round(diff_p50, 3),
        "publishing_adds_mean_ms": round(diff_mean, 3),
        "publishing_adds_per_turn_paired_ms": round(paired_mean, 3),
        "publishing_adds_per_turn_95ci_ms": [
            round(paired_mean - half_ci, 3),
            round(paired_mean + half_ci, 3),
        ],
        "publishing_adds_per_turn_pair_median_ms": round(statistics.median(pairs) * 1000, 3),
        "publishing_adds_by_turn_median_ms": round(statistics.median(by_turn) * 1000, 3),
        "publishing_adds_p99_ms": round(real.turns.ms(99) - null.turns.ms(99), 3),
        "target_overhead_ms": TARGET_OVERHEAD_MS,
        "overhead_met": paired_mean + half_ci < TARGET_OVERHEAD_MS,
        "real_calls_passed": real.passed,
        "noop_calls_behaviour_passed": null.passed,
        "turns_per_call": round(turns_per_call, 2),
        "worker_events_per_turn": round(events_per_turn, 3),
        "publish_p50_ms": publish.ms(50),
        "publish_p99_ms": publish.ms(99),
        "publish_samples": len(publish.values),
        "call_events_publish_p50_ms": call_publish.ms(50),
        "call_events_publish_p99_ms": call_publish.ms(99),
        "publish_cost_per_turn_estimate_ms": round(events_per_turn * call_publish.ms(50), 3),
        "inline_ack_cost_per_turn_estimate_ms": round(events_per_turn * publish.ms(50), 3),
    }


async def loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    """How late a 10 ms timer fires: the longest the loop was busy with something else."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        worst.append(max(0.0, loop.time() - due))


def rss_mb() -> float:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class GcPauses:
    """Durations of the garbage collector's runs: a full collection stops the event loop."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int]] = []
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started, info["generation"]))

    def figures(self) -> dict[str, Any]:
        worst = max(self.pauses, default=(0.0, 0))
        return {
            "gc_runs": len(self.pauses),
            "gc_full_runs": sum(1 for _, generation in self.pauses if generation == 2),
            "gc_total_s": round(sum(p for p, _ in self.pauses), 3),
            "gc_pause_max_ms": round(worst[0] * 1000, 1),
        }


@dataclass
class Crowd:
    """The calls of the concurrency run and what they measured."""

    calls: int
    think_s: float
    rng: random.Random
    turns: Samples = field(default_factory=Samples)
    openings: Samples = field(default_factory=Samples)
    by_turn: dict[str, Samples] = field(default_factory=dict)
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when every call has started: callers speak only then, so all are in progress."""
    in_progress: int = 0
    peak_in_progress: int = 0
    full_since: float | None = None
    full_until: float | None = None

    def probe(self, script: str) -> Probe:
        first = True

        def on_turn(number: int, seconds: float) -> None:
            (self.openings if number == 0 else self.turns).add(seconds)
            self.by_turn.setdefault(f"{script} turn {number}", Samples()).add(seconds)

        async def pause() -> None:
            nonlocal first
            if first:
                first = False
                await self.all_in.wait()
            await asyncio.sleep(self.rng.uniform(0, 2 * self.think_s))

        return Probe(on_turn=on_turn, before_turn=pause)

    def enter(self) -> None:
        self.in_progress += 1
        self.peak_in_progress = max(self.peak_in_progress, self.in_progress)
        if self.in_progress == self.calls:
            self.full_since = time.perf_counter()
            self.all_in.set()

    def leave(self) -> None:
        if self.in_progress == self.calls:
            self.full_until = time.perf_counter()
        self.in_progress -= 1

    @property
    def full_s(self) -> float:
        if self.full_since is None or self.full_until is None:
            return 0.0
        return self.full_until - self.full_since


async def concurrency(
    bus: Bus,
    settings: VoiceSettings,
    plays: list[scenarios.Scenario],
    calls: int,
    ramp_s: float,
    think_s: float,
    seed: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    """``calls`` calls start over ``ramp_s`` s (opening and greeting each); once all are in
    progress their callers start talking, pausing 0 to ``2 * think_s`` s before each turn."""
    crowd = Crowd(calls, think_s, random.Random(seed))
    lag: list[float] = []
    stop = asyncio.Event()

    async def one(index: int) -> Report | BaseException:
        await asyncio.sleep(ramp_s * index / calls)
        scenario = plays[index % len(plays)]
        crowd.enter()
        try:
            return await run_scenario(scenario, bus, settings, probe=crowd.probe(scenario.call_id))
        except Exception as exc:  # a crashed call is a failed call, not a crashed bench
            return exc
        finally:
            crowd.leave()

    rss_before = rss_mb()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    lag_task = asyncio.create_task(loop_lag(stop, lag))
    started = time.perf_counter()
    with GcPauses() as gc_pauses:
        results = await asyncio.gather(*(one(i) for i in range(calls)))
    wall = time.perf_counter() - started
    cpu = {
        name.replace("-", "_"): cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()
    }
    stop.set()
    await lag_task
    reports = [r for r in results if isinstance(r, Report)]
    crashed = [r for r in results if not isinstance(r, Report)]
    completed = [r for r in reports if not r.errors]
    passed = [r for r in reports if r.ok]
    for report in reports:
        if not report.ok:
            print(f"  call {report.call_id} failed: {failures(report)}")
    for exc in crashed[:5]:
        print(f"  call crashed: {type(exc).__name__}: {exc}")
    turns, openings = crowd.turns, crowd.openings
    all_turns = len(turns.values) + len(openings.values)
    slowest = sorted(crowd.by_turn.items(), key=lambda kv: kv[1].percentile(99), reverse=True)
    mixed = sum(1 for r in reports if {e.data.get("call_id") for e in r.events} - {r.call_id})
    return {
        "calls": calls,
        "calls_completed": len(completed),
        "calls_failed": calls - len(completed),
        "calls_expectations_passed": len(passed),
        "all_expectations_passed": len(passed) == calls,
        "distinct_call_ids": len({r.call_id for r in reports}),
        "calls_with_foreign_events": mixed,
        "peak_calls_in_progress": crowd.peak_in_progress,
        "all_calls_in_progress_s": round(crowd.full_s, 2),
        "ramp_s": ramp_s,
        "think_s": think_s,
        "wall_s": round(wall, 2),
        "turns": len(turns.values),
        "turn_p50_ms": turns.ms(50),
        "turn_p99_ms": turns.ms(99),
        "turn_max_ms": round(max(turns.values) * 1000, 3),
        "slowest_turns_p50_p99_ms": {name: [s.ms(50), s.ms(99)] for name, s in slowest[:4]},
        "opening_p50_ms": openings.ms(50),
        "opening_p99_ms": openings.ms(99),
        "turns_per_s": round(all_turns / wall, 1),
        "worker_cpu_ms_per_turn": round(cpu["worker"] / all_turns * 1000, 2),
        "loop_lag_max_ms": round(max(lag) * 1000, 2),
        "loop_lag_p99_ms": round(Samples(lag).percentile(99) * 1000, 2),
        **gc_pauses.figures(),
        **{f"cpu_share_{name}": round(used / wall, 2) for name, used in cpu.items()},
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(max(peak_rss_mb(), rss_mb()), 1),
        "target_calls": TARGET_CALLS,
        "concurrency_met": calls >= TARGET_CALLS
        and len(passed) == calls
        and crowd.peak_in_progress == calls,
    }


async def measure(args: argparse.Namespace, url: str, pids: dict[str, int]) -> dict[str, Any]:
    settings = msgspec.structs.replace(
        VoiceSettings(), nats_url=url, instance="voice-bench", log_level=args.log_level
    )
    files = WITHOUT_TRANSFER + (WITH_TRANSFER if args.with_transfers else ())
    plays = [scenarios.load(SCENARIOS / name) for name in files]
    bus = await open_bus(settings)
    try:
        for scenario in plays:  # warm up: imports, caches, the ledger's first writes
            await run_scenario(scenario, bus, settings)
        if not args.default_gc:
            collector.prepare_for_calls()  # what the worker does before it takes calls
        result: dict[str, Any] = {
            "scripts": [p.call_id for p in plays],
            "gc_thresholds": list(gc.get_threshold()),
            "gc_frozen_objects": gc.get_freeze_count(),
        }
        if args.overhead_rounds:
            print(f"overhead: {args.overhead_rounds} rounds of {len(plays)} calls per mode")
            result |= await overhead(bus, settings, plays, args.overhead_rounds)
        if args.calls:
            print(f"concurrency: {args.calls} calls in this process", flush=True)
            result |= await concurrency(
                bus, settings, plays, args.calls, args.ramp, args.think, args.seed, pids
            )
        return result
    finally:
        await bus.close()


def quiet_logs(level: str, path: Path) -> None:
    """The worker's own JSON logs go to a file, as in ``make demo``."""
    configure_logging(Owner.VOICE.value, level, path.open("a", encoding="utf-8"))
    logfilter.install()
    logging.getLogger("livekit").setLevel(logging.WARNING)


async def start_services(procs: list[ServiceProcess], url: str) -> None:
    for proc in procs:
        proc.start()
    for proc in procs:
        await proc.ready(url, timeout=30)


def pid(process: subprocess.Popen[bytes] | None) -> int:
    assert process is not None, "started above"
    return process.pid


def run(args: argparse.Namespace) -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix="sb-voice-bench-"))
    quiet_logs(args.log_level, logs / "voice.log")
    server = NatsServer().start()
    env = {"SB_NATS_URL": server.url, "SB_LOG_LEVEL": args.log_level}
    # Each service gets only the settings it reads: unknown SB_* variables stop a service.
    own_env: dict[str, dict[str, str]] = {"consent": {"SB_LEDGER_DB": str(logs / "ledger.db")}}
    if args.with_transfers:
        caps = str(max(1000, args.calls * 4))
        own_env["sip-bridge"] = {
            "SB_TRANSFER_CPS": caps,
            "SB_TRANSFER_BURST": caps,
            "SB_TRANSFER_MAX_CONCURRENT": caps,
        }
    procs = [
        ServiceProcess(
            module, name, env={**env, **own_env.get(name, {})}, log_path=logs / f"{name}.log"
        )
        for module, name in BACKENDS
    ]
    try:
        asyncio.run(start_services(procs, server.url))
        pids = {"worker": os.getpid(), "nats": pid(server.process)}
        pids |= {proc.service: pid(proc.process) for proc in procs}
        result = asyncio.run(measure(args, server.url, pids))
        result["bridge_caps_raised"] = bool(args.with_transfers)
        result["logs"] = str(logs)
        return result
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Voice worker: event overhead, concurrency.")
    parser.add_argument("--overhead-rounds", type=int, default=20, help="0 skips part 1")
    parser.add_argument("--calls", type=int, default=TARGET_CALLS, help="0 skips part 2")
    parser.add_argument("--ramp", type=float, default=10.0, help="s over which calls start")
    parser.add_argument("--think", type=float, default=2.0, help="mean caller pause, s")
    parser.add_argument("--with-transfers", action="store_true", help="add transfer scripts")
    parser.add_argument("--log-level", default="INFO", help="worker and services")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep CPython's GC settings (the before)"
    )
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    result = run(args)
    result["loadavg_1m_before"] = round(load_before, 2)
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    ok = result.get("all_expectations_passed", True) and (
        result.get("real_calls_passed", 0) == result.get("overhead_calls_per_mode", 0)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
