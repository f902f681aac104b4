"""Voice workers at scale: what one worker process carries, against bare livekit-agents in
the same run.

``python -m bench.voice_bench`` starts its own nats-server and the three backend services as
subprocesses (the ledger on SQLite in a temporary directory, the router, the sip-bridge with
its simulated carrier), then runs these passes in this one process, which is the worker:

1. **baseline** — ``--sessions`` (200) bare livekit-agents text-mode sessions
   (``voice_baseline``): one agent, one tool, a deterministic LLM answering each caller turn
   with one tool call and a short reply; no NATS, nothing of Switchboard.
2. **switchboard** — the same number of calls through the real agent graph (rules brain,
   screening, consent, recording gate, handoffs, escalations) with the real services over
   NATS, shaped like the demo scenarios, through the scenario runner.
3. **switchboard, events off** — pass 2 with the worker's own event publishing replaced by
   a no-op: the difference is what publishing costs.
4. **switchboard at scale** — ``--scale`` (500) calls at once.

Every pass paces its callers alike: calls start over ``--ramp`` seconds; once all are in
progress the callers talk, each waiting ``--think`` seconds (±50 %) before every turn, as
people do. A turn is timed from the caller's text to the end of the agent's answer
(``session.run``). The worker's CPU is this process's process time over the pass
(user + system, all threads), divided by the caller turns played. Figures per pass: turn
p50/p99, CPU ms per turn, peak RSS and RSS per live call, events published per turn,
event-loop lag, collector pauses; then the ratios Switchboard/baseline. After the passes the
worker must be back where it started: no task, NATS subscription or memory left behind.

Targets (issue "Voice workers at scale"): CPU per turn at most 1.2x the baseline at 200
calls; p99 turn latency under 250 ms at 500 calls; event publishing adds under 1 ms per
turn. The last line printed is one JSON object with the figures, including
``cpu_per_turn_ratio_200``, ``p99_ms_500`` and ``publish_ms_per_turn``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import random
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from bench.measure import GcPauses, Samples, cpu_seconds, loop_lag, peak_rss_mb, rss_mb
from bench.voice_baseline import OneToolLLM, start_session
from switchboard.contracts.base import Message
from switchboard.contracts.subjects import Owner
from switchboard.devstack.launcher import BACKENDS, ServiceProcess, local_settings, provision
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.logs import configure_logging
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.report import Report
from switchboard.simulation.runner import Probe, run_scenario
from switchboard.voice import collector, logfilter
from switchboard.voice.brain import RulesBrain
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
TARGET_CPU_RATIO = 1.2
TARGET_P99_MS = 250.0
TARGET_PUBLISH_MS = 1.0
RSS_SAMPLE_S = 0.5


class NullEvents:
    """Publishing off: an event sink that publishes nothing."""

    async def publish(self, payload: Message) -> str | None:
        return None

    async def settle(self) -> None:
        return None


@dataclass
class Crowd:
    """Paces one pass: calls arrive over ``ramp_s``; once all are in, each caller waits
    about ``think_s`` before every turn."""

    size: int
    ramp_s: float
    think_s: float
    rng: random.Random
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    live: int = 0
    peak_live: int = 0

    async def arrive(self, index: int) -> None:
        await asyncio.sleep(self.ramp_s * index / self.size)

    def enter(self) -> None:
        self.live += 1
        self.peak_live = max(self.peak_live, self.live)
        if self.live == self.size:
            self.all_in.set()

    def leave(self) -> None:
        self.live -= 1

    async def think(self, first: bool) -> None:
        if first:
            await self.all_in.wait()
        await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.think_s)


@dataclass
class PassResult:
    name: str
    sessions: int
    turns: Samples = field(default_factory=Samples)
    openings: Samples = field(default_factory=Samples)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    events: int = 0
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    gc: dict[str, Any] = field(default_factory=dict)
    services_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_ms_per_turn(self) -> float:
        return self.cpu_s / max(1, len(self.turns.values)) * 1000

    def figures(self) -> dict[str, Any]:
        turns = len(self.turns.values)
        return {
            "sessions": self.sessions,
            "caller_turns": turns,
            "turn_p50_ms": self.turns.ms(50),
            "turn_p99_ms": self.turns.ms(99),
            "turn_max_ms": self.turns.ms(100),
            "opening_p99_ms": self.openings.ms(99),
            "cpu_ms_per_turn": round(self.cpu_ms_per_turn, 3),
            "cpu_share": round(self.cpu_s / self.wall_s, 3) if self.wall_s else 0.0,
            "wall_s": round(self.wall_s, 1),
            "peak_rss_mb": round(self.rss_peak_mb, 1),
            "rss_per_live_session_mb": round(
                (self.rss_peak_mb - self.rss_before_mb) / max(1, self.sessions), 3
            ),
            "events_per_turn": round(self.events / max(1, turns), 3),
            "calls_passed": self.passed,
            "calls_failed": len(self.failed),
            "loop_lag_p99_ms": round(Samples(self.lag).percentile(99) * 1000, 2),
            "loop_lag_max_ms": round(max(self.lag, default=0.0) * 1000, 2),
            **self.gc,
            **{f"cpu_s_{name}": round(s, 2) for name, s in self.services_cpu_s.items()},
        }


Call = Callable[[int, Crowd, PassResult], Awaitable[None]]


async def run_pass(
    name: str, sessions: int, args: argparse.Namespace, call: Call, pids: dict[str, int]
) -> PassResult:
    """Play ``sessions`` calls at once with ``call`` and measure this process meanwhile."""
    gc.collect()
    result = PassResult(name, sessions, rss_before_mb=rss_mb())
    crowd = Crowd(sessions, args.ramp, args.think, random.Random(args.seed))
    stop = asyncio.Event()

    async def watch_rss() -> None:
        while not stop.is_set():
            result.rss_peak_mb = max(result.rss_peak_mb, rss_mb())
            await asyncio.sleep(RSS_SAMPLE_S)

    services_before = {n: cpu_seconds(p) for n, p in pids.items()}
    watchers = [
        asyncio.create_task(loop_lag(stop, result.lag)),
        asyncio.create_task(watch_rss()),
    ]
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    with GcPauses() as pauses:
        await asyncio.gather(*(call(i, crowd, result) for i in range(sessions)))
    result.cpu_s = time.process_time() - cpu_before
    result.wall_s = time.perf_counter() - wall_before
    stop.set()
    await asyncio.gather(*watchers)
    result.gc = pauses.figures()
    result.services_cpu_s = {n: cpu_seconds(p) - services_before[n] for n, p in pids.items()}
    print(
        f"{name:>24} x{sessions}: {result.turns.line()}  "
        f"cpu {result.cpu_ms_per_turn:.2f} ms/turn  failed {len(result.failed)}",
        flush=True,
    )
    return result


def baseline_call(plays: list[scenarios.Scenario]) -> Call:
    async def call(index: int, crowd: Crowd, result: PassResult) -> None:
        script = plays[index % len(plays)]
        await crowd.arrive(index)
        # One LLM per session, as in a worker: every activity on an LLM instance hears all of
        # its metrics events, so a shared instance makes each turn's cost grow with the
        # number of calls.
        session = await start_session(OneToolLLM())
        crowd.enter()
        try:
            for number, text in enumerate(script.turns):
                await crowd.think(first=number == 0)
                started = time.perf_counter()
                await session.run(user_input=text)
                result.turns.add(time.perf_counter() - started)
            result.passed += 1
        except Exception as exc:
            result.failed.append(f"{type(exc).__name__}: {exc}")
        finally:
            crowd.leave()
            await session.aclose()

    return call


def switchboard_call(
    plays: list[scenarios.Scenario], bus: Bus, settings: VoiceSettings, *, events_off: bool
) -> Call:
    null_events = NullEvents() if events_off else None

    async def call(index: int, crowd: Crowd, result: PassResult) -> None:
        script = plays[index % len(plays)]
        await crowd.arrive(index)
        first = True

        def on_turn(number: int, seconds: float) -> None:
            (result.openings if number == 0 else result.turns).add(seconds)

        async def before_turn() -> None:
            nonlocal first
            await crowd.think(first)
            first = False

        crowd.enter()
        try:
            report = await run_scenario(
                script,
                bus,
                settings,
                probe=Probe(on_turn=on_turn, before_turn=before_turn, events=null_events),
                chat_model=RulesBrain(),  # one per call (see baseline_call)
            )
        except Exception as exc:  # a crashed call is a failed call, not a crashed bench
            result.failed.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            crowd.leave()
        result.events += sum(1 for e in report.events if e.source == bus.source)
        if report.ok or (events_off and not report.errors and _ok_without_events(report)):
            result.passed += 1
        else:
            result.failed.append(_failures(report))

    return call


def _ok_without_events(report: Report) -> bool:
    """With publishing off, checks that read the worker's own events cannot pass."""
    own = ("events in order", "callback", "transfer states")
    return all(c.ok for c in report.checks if c.name not in own and not c.name.startswith("no "))


def _failures(report: Report) -> str:
    return "; ".join([f"{c.name}: {c.detail}" for c in report.checks if not c.ok] + report.errors)


def leftovers(bus: Bus) -> dict[str, int]:
    """What a worker holds that calls could leave behind."""
    gc.collect()
    return {
        "tasks": len(asyncio.all_tasks()),
        "nats_subscriptions": len(bus.nc._subs),
        "unstored_events": bus.events.unstored,
    }


def profile_top(profiler: cProfile.Profile, lines: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(lines)
    return out.getvalue()


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
        warm = await start_session(OneToolLLM())
        await warm.run(user_input="warm up")
        await warm.aclose()
        if not args.default_gc:
            collector.prepare_for_calls()  # what the worker does before it takes calls
        before = leftovers(bus)
        rss_warm = rss_mb()
        n, big = args.sessions, args.scale
        base = await run_pass("baseline", n, args, baseline_call(plays), pids)
        sb = await run_pass(
            "switchboard", n, args, switchboard_call(plays, bus, settings, events_off=False), pids
        )
        quiet = await run_pass(
            "switchboard, events off",
            n,
            args,
            switchboard_call(plays, bus, settings, events_off=True),
            pids,
        )
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        scale = await run_pass(
            "switchboard at scale",
            big,
            args,
            switchboard_call(plays, bus, settings, events_off=False),
            pids,
        )
        if profiler is not None:
            profiler.disable()
            print(profile_top(profiler), flush=True)
        await bus.events.settle()
        after = leftovers(bus)
        rss_after = rss_mb()
        cpu_ratio = sb.cpu_ms_per_turn / base.cpu_ms_per_turn
        publish_cpu_ms = sb.cpu_ms_per_turn - quiet.cpu_ms_per_turn
        publish_latency_ms = sb.turns.mean_ms() - quiet.turns.mean_ms()
        return {
            "scripts": [p.call_id for p in plays],
            "gc_thresholds": list(gc.get_threshold()),
            "pacing": {"ramp_s": args.ramp, "think_s": args.think},
            "baseline": base.figures(),
            "switchboard": sb.figures(),
            "switchboard_events_off": quiet.figures(),
            "switchboard_scale": scale.figures(),
            f"cpu_per_turn_ratio_{n}": round(cpu_ratio, 3),
            f"p99_ratio_{n}": round(sb.turns.ms(99) / max(base.turns.ms(99), 1e-9), 3),
            f"rss_per_session_ratio_{n}": round(
                sb.figures()["rss_per_live_session_mb"]
                / max(base.figures()["rss_per_live_session_mb"], 1e-9),
                3,
            ),
            f"p99_ms_{big}": scale.turns.ms(99),
            "publish_ms_per_turn": round(publish_cpu_ms, 3),
            "publish_latency_ms_per_turn": round(publish_latency_ms, 3),
            "events_per_turn": sb.figures()["events_per_turn"],
            "leftovers_before": before,
            "leftovers_after": after,
            "rss_growth_after_calls_mb": round(rss_after - rss_warm, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "targets": {
                "cpu_per_turn_ratio": TARGET_CPU_RATIO,
                "p99_ms": TARGET_P99_MS,
                "publish_ms_per_turn": TARGET_PUBLISH_MS,
            },
            "cpu_ratio_met": cpu_ratio <= TARGET_CPU_RATIO,
            "p99_met": scale.turns.ms(99) < TARGET_P99_MS,
            "publish_met": publish_cpu_ms < TARGET_PUBLISH_MS,
            "all_calls_passed": not (base.failed or sb.failed or quiet.failed or scale.failed),
            "failures": (sb.failed + quiet.failed + scale.failed + base.failed)[:5],
        }
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
    provision(server.url)
    env = {"SB_NATS_URL": server.url, "SB_LOG_LEVEL": args.log_level}
    # Each service gets only the settings it reads: unknown SB_* variables stop a service.
    own_env: dict[str, dict[str, str]] = {
        "consent": {
            "SB_LEDGER_DB": str(logs / "ledger.db"),
            "SB_LEDGER_SECRET_FILE": str(logs / "ledger-secret.key"),
            "SB_CHECKPOINT_KEY_FILE": str(logs / "checkpoint-ed25519.pem"),
            "SB_LEDGER_GENERATE_KEYS": "true",
        }
    }
    if args.with_transfers:
        caps = str(max(1000, args.scale * 4))
        own_env["sip-bridge"] = {
            "SB_TRANSFER_CPS": caps,
            "SB_TRANSFER_BURST": caps,
            "SB_TRANSFER_MAX_CONCURRENT": caps,
        }
    procs = [
        ServiceProcess(
            module,
            name,
            env={**env, **local_settings(name), **own_env.get(name, {})},
            log_path=logs / f"{name}.log",
        )
        for module, name in BACKENDS
    ]
    try:
        asyncio.run(start_services(procs, server.url))
        pids = {"nats": pid(server.process)}
        pids |= {proc.service.replace("-", "_"): pid(proc.process) for proc in procs}
        result = asyncio.run(measure(args, server.url, pids))
        result["bridge_caps_raised"] = bool(args.with_transfers)
        return result
    finally:
        for proc in reversed(procs):
            proc.stop()
        server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.voice_bench", description="Voice worker against bare livekit-agents."
    )
    parser.add_argument("--sessions", type=int, default=200, help="calls in passes 1-3")
    parser.add_argument("--scale", type=int, default=500, help="calls in pass 4")
    parser.add_argument("--ramp", type=float, default=20.0, help="s over which calls start")
    parser.add_argument("--think", type=float, default=5.0, help="mean caller pause, s")
    parser.add_argument("--with-transfers", action="store_true", help="add transfer scripts")
    parser.add_argument("--profile", action="store_true", help="profile the scale pass")
    parser.add_argument("--log-level", default="WARNING", help="worker and services")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep CPython's collector settings"
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
    return 0 if result["all_calls_passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
