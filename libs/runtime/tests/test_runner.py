"""run_service: readiness in $SRV.INFO and a clean stop."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client as NATS

from switchboard.contracts import ConsentMode, ConsentPolicy, ConsentPolicyQuery
from switchboard.contracts.subjects import CONSENT_POLICY, request_spec
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import request
from switchboard.runtime.service import Runtime, add_typed_endpoint, run_service
from switchboard.runtime.settings import ServiceSettings
from switchboard.testing import eventually

POLICY = request_spec(CONSENT_POLICY)


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
