"""The relay as a real process, killed with SIGKILL mid-stream and started again."""

from __future__ import annotations

from pathlib import Path

from conftest import Config, step
from relay_testkit import Receiver

from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher
from switchboard.testing import eventually

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
