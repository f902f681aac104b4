"""run_service: readiness in $SRV.INFO and a clean stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from switchboard.contracts import ConsentMode, ConsentPolicy, ConsentPolicyQuery
from switchboard.contracts.subjects import CONSENT_POLICY, request_spec
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import request
from switchboard.runtime.service import (
    Cleanup,
    Runtime,
    ServiceFailed,
    add_typed_endpoint,
    confirm_registered,
    run_service,
)
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


async def _run_keeping(
    nats_server: NatsServer, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> tuple[asyncio.Task[None], asyncio.Event, asyncio.Event]:
    """A service whose setup keeps ``work(go)`` running; returns its task, ``go`` and stop."""
    go = asyncio.Event()
    stop = asyncio.Event()

    async def setup(rt: Runtime) -> Cleanup:
        kept = rt.keep(work(go), "the loop")

        async def cleanup() -> None:
            kept.cancel()

        return cleanup

    settings = ServiceSettings(nats_url=nats_server.url)
    task = asyncio.create_task(run_service("consent", "0.1.0", settings, setup, stop=stop))
    return task, go, stop


async def test_a_kept_loop_that_dies_fails_the_service(nats_server: NatsServer) -> None:
    """A consumer loop that dies must not leave the service answering as if all were well
    (found for consent ingest in issue 7; every service's loops go through ``keep``)."""

    async def dies(go: asyncio.Event) -> None:
        await go.wait()
        raise RuntimeError("a bug")

    task, go, stop = await _run_keeping(nats_server, dies)
    go.set()
    try:
        with pytest.raises(ServiceFailed, match=r"the loop stopped \(RuntimeError\)"):
            await asyncio.wait_for(task, 10)
    finally:
        stop.set()


async def test_a_kept_loop_that_returns_early_fails_the_service(nats_server: NatsServer) -> None:
    async def returns(go: asyncio.Event) -> None:
        await go.wait()

    task, go, stop = await _run_keeping(nats_server, returns)
    go.set()
    try:
        with pytest.raises(ServiceFailed, match="returned while the service was running"):
            await asyncio.wait_for(task, 10)
    finally:
        stop.set()


async def test_a_kept_loop_cancelled_in_cleanup_is_a_clean_stop(
    nc: NATS, nats_server: NatsServer
) -> None:
    async def forever(go: asyncio.Event) -> None:
        await asyncio.Event().wait()

    task, _, stop = await _run_keeping(nats_server, forever)

    async def ready() -> bool:
        try:
            reply = await nc.request("$SRV.INFO.consent", b"", timeout=0.5)
        except Exception:
            return False
        return bool(json.loads(reply.data)["metadata"]["state"] == "ready")

    await eventually(ready, message="the service to be ready")
    stop.set()
    await asyncio.wait_for(task, 10)  # no ServiceFailed


async def test_the_endpoints_are_confirmed_through_a_server_restart(tmp_path: Path) -> None:
    """A service that started as nats-server restarted exited: its start-up flush was in
    flight while the client reconnected, nats-py drops the PONGs it waits for when it
    reconnects, and the flush timed out after 10 s."""
    server = NatsServer(store_dir=tmp_path / "store").start()
    client = await nats.connect(server.url, reconnect_time_wait=0.05, max_reconnect_attempts=-1)
    try:
        server.stop()
        await eventually(lambda: client.is_reconnecting, message="the client reconnecting")
        confirming = asyncio.ensure_future(confirm_registered(client, asyncio.Event()))
        server.start()
        await asyncio.wait_for(confirming, 5)
        assert client.is_connected
    finally:
        await client.close()
        server.stop()
