"""The relay as a real process, killed with SIGKILL mid-stream and started again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import Config, relay_settings, step
from relay_testkit import Receiver

from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher
from switchboard.runtime.service import ServiceFailed, run_service
from switchboard.testing import eventually
from switchboard.webhook_relay.app import build_setup
from switchboard.webhook_relay.endpoint import EndpointRelay
from switchboard.webhook_relay.endpoints import load_endpoints

CALLS = 30
PER_CALL = 10


def _relay(nats_server: NatsServer, endpoints: Path, log: Path) -> ServiceProcess:
    env = {
        "SB_NATS_URL": nats_server.url,
        "SB_WEBHOOK_ENDPOINTS_FILE": str(endpoints),
        "SB_WEBHOOK_RETRY_INITIAL_S": "0.02",
        "SB_WEBHOOK_RETRY_MAX_S": "0.2",
        "SB_WEBHOOK_ACK_WAIT_S": "3",
    }
    return ServiceProcess("switchboard.webhook_relay", "webhook-relay", env=env, log_path=log)


async def test_a_relay_killed_mid_stream_loses_nothing_and_keeps_each_calls_order(
    receiver: Receiver,
    config: Config,
    nats_server: NatsServer,
    publisher: EventPublisher,
    tmp_path: Path,
) -> None:
    receiver.delay_s = 0.03
    endpoints = config.write()
    log = tmp_path / "relay.log"
    first = _relay(nats_server, endpoints, log).start()
    try:
        await first.ready(nats_server.url)
        sent: dict[str, list[str]] = {f"call-{c}": [] for c in range(CALLS)}
        for n in range(PER_CALL):
            for call_id, ids in sent.items():
                ids.append((await publisher.send(step(call_id, n))).event_id)
        assert await publisher.settle(10)
        every = {i for ids in sent.values() for i in ids}
        await eventually(lambda: len(receiver.delivered_ids()) >= len(every) // 4, interval=0.005)
    finally:
        first.kill()  # SIGKILL: nothing is flushed, nothing is acked on the way out
    got_before = len(receiver.delivered_ids())
    assert got_before < len(every), "the stream was over before the kill; nothing was tested"
    second = _relay(nats_server, endpoints, log).start()
    try:
        await second.ready(nats_server.url)
        await eventually(
            lambda: receiver.delivered_ids() == every, timeout=60, message="every event"
        )
    finally:
        assert second.stop() == 0, log.read_text()[-3000:]
    # Duplicates only as the same event under the same webhook-id, with the same body.
    bodies: dict[str, bytes] = {}
    for r in receiver.delivered():
        assert r.event["id"] == r.webhook_id
        assert bodies.setdefault(r.webhook_id, r.body) == r.body
    # Each call's events were first received in the order they were stored.
    first_seen: dict[str, list[str]] = {call_id: [] for call_id in sent}
    seen: set[str] = set()
    for r in receiver.delivered():
        if r.webhook_id not in seen:
            seen.add(r.webhook_id)
            first_seen[r.event["subject"]].append(r.webhook_id)
    assert first_seen == sent
    receiver.verify_all(config.secret)
    # The second relay found events pending and resumed at the ack floor, in order.
    assert "Resumed the endpoint's consumer at its ack floor." in log.read_text()


async def test_a_relay_whose_pull_loop_dies_fails_instead_of_relaying_nothing(
    config: Config, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull loop that dies must not leave a relay that answers ``$SRV`` as healthy and
    delivers nothing: the service fails and its process exits non-zero (restarted)."""

    async def broken(self: EndpointRelay, psub: object) -> None:
        raise RuntimeError("a bug in the pull loop")

    monkeypatch.setattr(EndpointRelay, "_pull_until_cancelled", broken)
    settings = relay_settings(nats_server, config.write())
    parsed = load_endpoints(settings.webhook_endpoints_file, settings.webhook_give_up_s)
    stop = asyncio.Event()
    try:
        with pytest.raises(ServiceFailed, match=r"pull crm stopped \(RuntimeError\)"):
            await asyncio.wait_for(
                run_service(
                    "webhook-relay", "0.0.1", settings, build_setup(parsed, settings), stop=stop
                ),
                15,
            )
    finally:
        stop.set()
