"""The launcher: readiness only once every endpoint answers, exits reported, SIGTERM stops."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from switchboard.contracts import ConsentMode, ConsentPolicy, ConsentPolicyQuery
from switchboard.contracts.subjects import CONSENT_POLICY
from switchboard.devstack.launcher import LaunchError, ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import request


async def test_the_launcher_reports_a_service_that_exits_at_start(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    proc = ServiceProcess("switchboard.does_not_exist", "nothing", log_path=tmp_path / "log")
    proc.start()
    with pytest.raises(LaunchError, match="exited"):
        await proc.ready(nats_server.url, timeout=10)
    assert "No module named" in (tmp_path / "log").read_text()


async def test_the_launcher_waits_for_a_subprocess_service_and_stops_it_with_sigterm(
    tmp_path: Path, nats_server: NatsServer, nc: NATS
) -> None:
    module = tmp_path / "tiny_service.py"
    module.write_text(
        textwrap.dedent(
            """
            import asyncio, os
            from switchboard.contracts import ConsentMode, ConsentPolicy
            from switchboard.contracts.subjects import CONSENT_POLICY, request_spec
            from switchboard.runtime.service import add_typed_endpoint, run_service
            from switchboard.runtime.settings import ServiceSettings, load

            SPEC = request_spec(CONSENT_POLICY)

            async def answer(q):
                return ConsentPolicy(call_id=q.call_id, jurisdiction="unknown",
                    mode=ConsentMode.ASK, notice_text="n", notice_version="v1",
                    ai_disclosure="d")

            async def setup(rt):
                await asyncio.sleep(0.3)  # a slow start must not look ready
                await add_typed_endpoint(rt.service, SPEC, answer)
                return None

            asyncio.run(run_service("consent", "0.1.0", load(ServiceSettings), setup))
            """
        )
    )
    proc = ServiceProcess(
        "tiny_service",
        "consent",
        env={"SB_NATS_URL": nats_server.url, "PYTHONPATH": str(tmp_path)},
        log_path=tmp_path / "svc.log",
    ).start()
    try:
        await proc.ready(nats_server.url, timeout=20)
        reply = await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c"), ConsentPolicy, 2)
        assert reply.mode is ConsentMode.ASK
    finally:
        code = proc.stop()
    assert code == 0, (tmp_path / "svc.log").read_text()
    assert '"Stopped."' in (tmp_path / "svc.log").read_text()
