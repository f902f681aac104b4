"""The scenario runner and its command line, against in-test backends on real NATS."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from pathlib import Path

import msgspec
import pytest
from livekit.agents import Agent, AgentSession
from nats.aio.client import Client as NATS

from switchboard.contracts.base import Message
from switchboard.contracts.call import CallStarted
from switchboard.contracts.envelope import encode_event
from switchboard.devstack.natsserver import NatsServer
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.consult import TURN_TIMEOUT_S
from switchboard.simulation.observer import CallObserver
from switchboard.simulation.report import always
from switchboard.simulation.runner import Live, Probe, run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.testing import eventually
from switchboard.testing.crm import RunningCrm
from switchboard.testing.fake_backends import Backends
from switchboard.voice.wiring import Bus

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "scenarios"
SCENARIO_A = SCENARIOS / "a_consent_billing_manager_transfer.toml"


def test_every_shipped_scenario_loads_and_checks_something() -> None:
    files = scenarios.discover(SCENARIOS)
    assert len(files) >= 12
    for path in files:
        loaded = scenarios.load(path)
        assert loaded.turns
        assert loaded.expect.events_in_order
        assert loaded.expect.outcome is not None


def test_a_malformed_scenario_is_refused_with_its_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ncall_id = "has spaces"\nturns = []\n')
    with pytest.raises(scenarios.ScenarioError, match=r"bad\.toml"):
        scenarios.load(bad)
    bad.write_text("name = ")
    with pytest.raises(scenarios.ScenarioError, match="not valid TOML"):
        scenarios.load(bad)


@pytest.mark.parametrize("path", scenarios.discover(SCENARIOS), ids=lambda p: p.stem)
async def test_shipped_scenarios_pass_against_contract_following_backends(
    path: Path, backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings
) -> None:
    lines: list[str] = []
    report = await run_scenario(
        scenarios.load(path), bus, settings, Live(on_line=lambda line: lines.append(line.text))
    )
    failed = [c for c in report.checks if not c.ok]
    assert report.ok, (failed, report.errors)
    assert lines  # printed as it happened
    assert report.call_id.startswith(scenarios.load(path).call_id + "-")


async def test_scenario_a_reports_transcript_events_receipts_transfers_and_recording(
    backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings
) -> None:
    report = await run_scenario(scenarios.load(SCENARIO_A), bus, settings)
    kinds = [e.kind for e in report.events]
    assert kinds[0] == "call.started"
    assert kinds[-1] == "call.ended"
    assert [r.decision for r in report.receipts] == ["granted"]
    assert report.receipts[0].sequence == 1
    [transfer] = report.transfers
    assert [s.state for s in transfer.steps] == [
        "dialing",
        "ringing",
        "answered",
        "briefed",
        "connected",
    ]
    # Consent was granted: the recording goes on with the person after the transfer.
    assert [r.action for r in report.recording] == ["started", "handed_over"]
    assert report.recording[0].consent_sequence == 1
    speakers = {u.speaker for u in report.transcript}
    assert {"caller", "consent_task", "triage", "billing", "manager"} <= speakers
    assert report.outcome == "transferred"
    # The person's side of it: the briefing was spoken before the bridge said "briefed".
    consult = [u for u in report.transcript if u.side == "consult"]
    assert [u.speaker for u in consult] == ["briefing", "human", "briefing", "human", "briefing"]
    assert consult[2].text.startswith("Here's the caller.")
    briefed = next(e for e in report.events if e.kind == "transfer.briefed")
    assert consult[2].at_s < briefed.at_s
    ended = next(e for e in report.events if e.kind == "call.ended")
    assert ended.data["recording_continues"] is True
    assert [(leg.attempt, leg.state) for leg in report.legs] == [(1, "ended")]
    assert report.transfers_in_progress == []
    assert {c.name for c in report.checks} >= {
        "briefing before transfer.briefed",
        "no transfer leg outlives the call",
    }


async def test_a_briefed_event_without_the_briefing_spoken_fails_the_report(
    backends: Backends, bus: Bus, settings: SimulationSettings
) -> None:
    report = await run_scenario(scenarios.load(SCENARIO_A), bus, settings)
    forged = msgspec.structs.replace(
        report,
        transcript=[u for u in report.transcript if not u.text.startswith("Here's the caller")],
    )
    [check] = [c for c in always(forged, legs_known=True) if c.name.startswith("briefing")]
    assert not check.ok
    left_open = msgspec.structs.replace(
        report, legs=[msgspec.structs.replace(report.legs[0], state="open")]
    )
    [check] = [c for c in always(left_open, legs_known=True) if c.name.startswith("no transfer")]
    assert not check.ok


async def test_unmet_expectations_fail_the_report(
    backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings, tmp_path: Path
) -> None:
    text = SCENARIO_A.read_text().replace('outcome = "transferred"', 'outcome = "callback"')
    path = tmp_path / "wrong.toml"
    path.write_text(text)
    report = await run_scenario(scenarios.load(path), bus, settings)
    assert not report.ok
    assert [c.name for c in report.checks if not c.ok] == ["outcome"]


async def _cli(url: str, *args: str) -> tuple[int, bytes, bytes]:
    env = {**os.environ, "SB_NATS_URL": url, "SB_CONSENT_RECEIPT_TIMEOUT_S": "2"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.simulation",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_the_command_line_prints_the_report_as_json(
    backends: Backends, demo_crm: RunningCrm, nats_server: NatsServer
) -> None:
    code, out, err = await _cli(nats_server.url, "run-scenario", str(SCENARIO_A), "--json")
    assert code == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["ok"] is True
    assert report["outcome"] == "transferred"
    assert report["events"][0]["kind"] == "call.started"
    assert report["receipts"][0]["decision"] == "granted"
    assert report["transfers"][0]["steps"][0]["state"] == "dialing"


async def test_the_command_line_prints_the_call_as_it_happens(
    backends: Backends, demo_crm: RunningCrm, nats_server: NatsServer
) -> None:
    code, out, _ = await _cli(nats_server.url, "run-scenario", str(SCENARIO_A))
    text = out.decode()
    assert code == 0
    assert "caller │ Yes, that's fine." in text
    assert "◆ consent.recorded" in text
    assert "Expectations PASSED" in text


async def test_the_command_line_exits_2_for_a_bad_file(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    code, _, err = await _cli(nats_server.url, "run-scenario", str(tmp_path / "missing.toml"))
    assert code == 2
    assert b"Cannot read scenario" in err


async def test_concurrent_calls_in_one_worker_do_not_mix(
    backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings
) -> None:
    """Calls share the process's NATS connection and nothing else."""
    # The worker's own timeouts, not the fixture's half-second ones (those keep the
    # fallback tests quick). Fourteen calls and every fake share this one event loop: with
    # the CPU busy, a router answer took longer than half a second now and then, and that
    # call took the fallback path (a callback), which is not what this test is about.
    worker = SimulationSettings(nats_url=settings.nats_url)
    roomy = msgspec.structs.replace(
        settings,
        consent_policy_timeout_s=worker.consent_policy_timeout_s,
        consent_receipt_timeout_s=worker.consent_receipt_timeout_s,
        router_timeout_s=worker.router_timeout_s,
        transfer_place_timeout_s=worker.transfer_place_timeout_s,
    )
    files = scenarios.discover(SCENARIOS)
    runs = [scenarios.load(files[i % len(files)]) for i in range(14)]
    reports = await asyncio.gather(*(run_scenario(s, bus, roomy) for s in runs))
    assert [r.ok for r in reports] == [True] * len(runs), [
        (r.scenario, [c.detail for c in r.checks if not c.ok], r.errors)
        for r in reports
        if not r.ok
    ]
    assert len({r.call_id for r in reports}) == len(runs)
    for report in reports:
        assert {e.data["call_id"] for e in report.events} == {report.call_id}


class _Kept:
    """An event sink that keeps what the call would have published."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    async def publish(self, payload: Message) -> str | None:
        self.kinds.append(type(payload).__name__)
        return None

    async def settle(self) -> None:
        return None


async def test_a_probe_times_every_turn_and_can_replace_the_event_publisher(
    backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings
) -> None:
    scenario = scenarios.load(SCENARIOS / "b_consent_declined_support_resolved.toml")
    turns: list[int] = []
    pauses: list[int] = []

    async def before_turn() -> None:
        pauses.append(len(turns))

    sink = _Kept()
    probe = Probe(on_turn=lambda n, s: turns.append(n), before_turn=before_turn, events=sink)
    report = await run_scenario(scenario, bus, settings, probe=probe)
    assert turns == list(range(len(scenario.turns) + 1))  # the opening, then each caller turn
    assert pauses == [1, 2, 3, 4]
    assert sink.kinds == ["CallStarted", "AgentHandedOff", "CallEnded"]
    # Nothing of the worker's own reached the bus; the ledger's receipt still did.
    assert [e.kind for e in report.events] == ["consent.recorded"]
    assert report.consent == "denied"
    assert report.outcome == "resolved"


async def test_calls_leave_no_task_or_subscription_behind(
    backends: Backends, bus: Bus, settings: SimulationSettings
) -> None:
    """What a worker holds per call (tasks, NATS subscriptions, unstored events, the
    sessions and agents themselves) is gone once its calls are over: 200 calls, 10 at a
    time."""
    files = scenarios.discover(SCENARIOS)
    plays = [scenarios.load(f) for f in files]
    await run_scenario(plays[0], bus, settings)  # warm up once: lazily created helpers

    def held() -> tuple[int, int]:
        gc.collect()
        return len(asyncio.all_tasks()), len(bus.nc._subs)

    before = held()
    for batch in range(20):
        reports = await asyncio.gather(
            *(run_scenario(plays[(batch * 10 + i) % len(plays)], bus, settings) for i in range(10))
        )
        assert [r.errors for r in reports if r.errors] == []
    await bus.events.settle()
    # The in-test backends poll with short-lived tasks of their own; a leak per call would
    # be hundreds of tasks, not a couple.
    await eventually(lambda: held()[0] <= before[0] + 2, message="the calls' tasks to end")
    assert held()[1] == before[1]
    assert bus.events.unstored == 0
    # No session or agent of a finished call stays reachable (their histories, tools and
    # timers would be the memory a long-running worker grows by). A cancelled timer keeps
    # its callback's context, and with it a session, until the time it was due: livekit's
    # user-away timer (15 s), the hold reminder's wait, and the longest, a scripted consult
    # room's wait for its turn (TURN_TIMEOUT_S). The last calls' sessions can take that
    # long to go, so the bound is past it (it was equal to it, and under CPU load the
    # sessions went at 31 s); a session held for good still fails.

    def alive(kind: type) -> int:
        gc.collect()
        return sum(isinstance(o, kind) for o in gc.get_objects())

    await eventually(
        lambda: alive(AgentSession) == 0, timeout=TURN_TIMEOUT_S + 15, message="sessions to go"
    )
    assert alive(Agent) == 0


async def test_the_observer_starts_while_nats_stalls_and_still_sees_the_calls_events(
    nats_server: NatsServer, nc: NATS
) -> None:
    """A call that begins while the server is restarting is still played and observed: the
    subscription stands once the connection is back (nats-py sends it again), so the
    observer does not wait out a flush that cannot be answered."""
    assert nats_server.process is not None
    nats_server.process.send_signal(signal.SIGSTOP)
    try:
        observer = await asyncio.wait_for(CallObserver().start(nc, "call-1"), 5.0)
    finally:
        nats_server.process.send_signal(signal.SIGCONT)
    event = encode_event(CallStarted(call_id="call-1", room="r"))
    await nc.publish(event.subject, event.body)
    assert await observer.wait_for("call.started", 5.0)
    await observer.close()
