"""run_service: readiness in $SRV.INFO, clean stop, and the launcher's readiness probe."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from switchboard.contracts import ConsentMode, ConsentPolicy, ConsentPolicyQuery
from switchboard.contracts.subjects import CONSENT_POLICY, REQUESTS
from switchboard.runtime.bus import request
from switchboard.runtime.launcher import LaunchError, ServiceProcess
from switchboard.runtime.natsserver import NatsServer
from switchboard.runtime.service import Runtime, add_typed_endpoint, run_service
from switchboard.runtime.settings import ServiceSettings
from switchboard.testing import eventually

POLICY = next(r for r in REQUESTS if r.subject == CONSENT_POLICY)


async def _answer(query: ConsentPolicyQuery) -> ConsentPolicy:
    return ConsentPolicy(
        call_id=query.call_id,
        jurisdiction="unknown",
        mode=ConsentMode.ASK,
        notice_text="n",
        notice_version="v1",
        ai_disclosure="d",
    )


async def test_a_service_reports_ready_only_after_setup_and_stops_cleanly(
    nc: NATS, nats_server: NatsServer
) -> None:
    release = asyncio.Event()
    cleaned = asyncio.Event()

    async def setup(rt: Runtime):  # type: ignore[no-untyped-def]
        await release.wait()
        await add_typed_endpoint(rt.service, POLICY, _answer)

        async def cleanup() -> None:
            cleaned.set()

        return cleanup

    stop = asyncio.Event()
    settings = ServiceSettings(nats_url=nats_server.url)
    task = asyncio.create_task(run_service("consent", "0.1.0", settings, setup, stop=stop))

    async def state() -> str | None:
        try:
            reply = await nc.request("$SRV.INFO.consent", b"", timeout=0.5)
        except Exception:
            return None
        return str(json.loads(reply.data)["metadata"]["state"])

    async def reports(expected: str) -> None:
        async def now() -> bool:
            return await state() == expected

        await eventually(now, message=f"state {expected!r} in $SRV.INFO")

    await reports("starting")
    release.set()
    await reports("ready")
    reply = await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c"), ConsentPolicy, 2)
    assert reply.call_id == "c"
    stop.set()
    await asyncio.wait_for(task, 5)
    assert cleaned.is_set()


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
            from switchboard.contracts.subjects import CONSENT_POLICY, REQUESTS
            from switchboard.runtime.service import add_typed_endpoint, run_service
            from switchboard.runtime.settings import ServiceSettings, load

            SPEC = next(r for r in REQUESTS if r.subject == CONSENT_POLICY)

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
