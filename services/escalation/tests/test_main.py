"""``python -m switchboard.escalation`` as a process: it serves, drains, refuses bad rules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from nats.aio.client import Client as NATS

from switchboard.contracts.escalation import (
    EscalationReason,
    EscalationRequest,
    EscalationTrigger,
    HandoffDecision,
    HandoffTarget,
)
from switchboard.contracts.subjects import ESCALATION_DECIDE
from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import request
from switchboard.testing import eventually

GOOD = (Path(__file__).parent / "data" / "rules.toml").read_text()
REFUSED = "Refused to reload the rules file; keeping the previous rules."


async def test_the_router_runs_from_its_entry_point_with_the_shipped_rules(
    nats_server: NatsServer, nc: NATS, tmp_path: Path
) -> None:
    proc = ServiceProcess(
        "switchboard.escalation",
        "escalation",
        env={"SB_NATS_URL": nats_server.url},
        log_path=tmp_path / "router.log",
    ).start()
    try:
        await proc.ready(nats_server.url)
        req = EscalationRequest(
            call_id="call-main",
            reason=EscalationReason.CALLER_REQUEST,
            trigger=EscalationTrigger.PHRASE,
            current_agent="triage",
            intent="support",
            wants_human=True,
        )
        decision: HandoffDecision = await request(nc, ESCALATION_DECIDE, req, HandoffDecision, 5)
        # Support and the front desk are staffed around the clock in the default rules.
        assert decision.target is HandoffTarget.HUMAN_QUEUE
        assert decision.queue in {"support", "general"}
        assert decision.destinations
    finally:
        code = proc.stop()
    assert code == 0, (tmp_path / "router.log").read_text()
    log = (tmp_path / "router.log").read_text()
    assert '"message": "Rules loaded."' in log


def test_the_router_refuses_to_start_with_an_invalid_rules_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(GOOD.replace('address = "+15550100201"', 'address = "dial 911"'))
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.escalation"],
        env={**os.environ, "SB_RULES_FILE": str(bad), "SB_NATS_URL": "nats://127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Refusing to start" in done.stderr
    assert str(bad) in done.stderr
    assert "$.queues.support.destinations[0].address" in done.stderr


async def test_sighup_reloads_a_good_rules_file_and_keeps_serving_through_a_bad_one(
    nats_server: NatsServer, nc: NATS, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(GOOD)
    proc = ServiceProcess(
        "switchboard.escalation",
        "escalation",
        env={"SB_NATS_URL": nats_server.url, "SB_RULES_FILE": str(rules), "SB_RULES_RELOAD_S": "0"},
        log_path=tmp_path / "router.log",
    ).start()
    req = EscalationRequest(
        call_id="call-hup",
        reason=EscalationReason.CALLER_REQUEST,
        trigger=EscalationTrigger.PHRASE,
        current_agent="triage",
    )

    async def say() -> str:
        decision: HandoffDecision = await request(nc, ESCALATION_DECIDE, req, HandoffDecision, 5)
        return decision.say

    async def say_after_hup(expected: str) -> None:
        proc.signal(signal.SIGHUP)

        async def says() -> bool:
            return await say() == expected

        await eventually(says, message=f"the router to say {expected!r}")

    try:
        await proc.ready(nats_server.url)
        assert await say() == "EN manager."
        write(rules, GOOD.replace("EN manager.", "EN new manager line."))
        await say_after_hup("EN new manager line.")
        write(rules, GOOD.replace('timezone = "UTC"', 'timezone = "Atlantis/Capital"'))
        proc.signal(signal.SIGHUP)
        await eventually(
            lambda: REFUSED in (tmp_path / "router.log").read_text(),
            message="the router to refuse the bad rules file",
        )
        assert await say() == "EN new manager line."
    finally:
        code = proc.stop()
    log = (tmp_path / "router.log").read_text()
    assert code == 0, log
    assert REFUSED in log
    assert "Atlantis/Capital" in log


def write(path: Path, text: str) -> None:
    path.write_text(text)


def test_business_hours_work_without_the_operating_systems_zone_files(tmp_path: Path) -> None:
    # Slim container images ship no /usr/share/zoneinfo; the tzdata package must cover it.
    script = (
        "import zoneinfo; assert not zoneinfo.TZPATH, zoneinfo.TZPATH\n"
        "from switchboard.escalation.rules_file import load_rules\n"
        "print(sorted({q.hours.zone.key for q in load_rules().queues.values()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONTZPATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "America/New_York" in done.stdout
