"""Call events: written at once, acknowledged in the background, all stored by the end."""

from __future__ import annotations

import logging

import nats
import pytest

from switchboard.contracts import streams
from switchboard.contracts.call import CallStarted
from switchboard.contracts.envelope import decode_envelope
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher, ensure_stream
from switchboard.voice.clients.events import CallEvents
from switchboard.voice.wiring import Bus


def _started(call_id: str, n: int) -> CallStarted:
    return CallStarted(call_id=call_id, room=f"room-{n}", trunk="main")


async def _stored_ids(bus: Bus) -> list[str]:
    info = await bus.js.stream_info(streams.EVENTS.name)
    ids = []
    for seq in range(1, int(info.state.last_seq) + 1):
        msg = await bus.js.get_msg(streams.EVENTS.name, seq)
        assert msg.data is not None
        ids.append(decode_envelope(msg.data).id)
    return ids


async def test_publishing_does_not_wait_for_the_ack_and_settle_does(bus: Bus) -> None:
    events = CallEvents(bus.events)
    event_id = await events.publish(_started("c-1", 0))
    # ``publish`` never yielded, so the ack cannot have been handled yet.
    assert event_id is not None
    assert bus.events.unstored == 1
    await events.settle()
    assert bus.events.unstored == 0
    assert await _stored_ids(bus) == [event_id]


async def test_a_calls_events_are_stored_in_the_order_they_happened(bus: Bus) -> None:
    events = CallEvents(bus.events)
    sent = [await events.publish(_started("c-2", n)) for n in range(50)]
    await events.settle()
    assert await _stored_ids(bus) == sent


async def test_events_sent_before_the_stream_exists_are_stored_once_it_does(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.delete_stream(streams.EVENTS.name)  # the test server comes provisioned
        acks = EventPublisher(js, retry_delay=0.05)
        events = CallEvents(acks)
        with caplog.at_level(logging.WARNING):
            event_id = await events.publish(_started("c-3", 0))
            await nc.flush()
            await ensure_stream(js, streams.EVENTS)
            await events.settle(timeout=5.0)
        assert acks.unstored == 0
        assert "Event not stored yet; retrying in the background." in caplog.messages
        msg = await js.get_msg(streams.EVENTS.name, 1)
        assert msg.data is not None
        assert decode_envelope(msg.data).id == event_id
        assert int((await js.stream_info(streams.EVENTS.name)).state.messages) == 1
        await acks.close()
    finally:
        await nc.close()


async def test_a_lost_connection_never_raises_into_the_call_and_is_reported(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    acks = EventPublisher(js, timeout=0.1, retry_delay=0.05)
    events = CallEvents(acks)
    await nc.close()
    with caplog.at_level(logging.WARNING):
        await events.publish(_started("c-4", 0))
        await events.settle(timeout=0.3)
        await acks.close(timeout=0.1)
    assert acks.unstored == 1
    assert "Call events not stored by the end of the call; still retrying." in caplog.messages
    assert "Events could not be stored before shutdown." in caplog.messages
