"""EventPublisher.send: written at once, confirmed in the background, retried under the
same id until stored, and whatever is left reported by id at shutdown."""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy

from switchboard.contracts import CallStarted
from switchboard.contracts.envelope import decode_envelope
from switchboard.contracts.streams import EVENTS
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import (
    EventPublisher,
    PublisherClosed,
    ensure_stream,
    stream_config,
)
from switchboard.testing import eventually

RETRYING = "Event not stored yet; retrying in the background."
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def started(call_id: str) -> CallStarted:
    return CallStarted(call_id=call_id, room="r", trunk="main")


async def stored_ids(js: JetStreamContext) -> list[str]:
    info = await js.stream_info(EVENTS.name)
    ids = []
    for seq in range(int(info.state.first_seq), int(info.state.last_seq) + 1):
        msg = await js.get_msg(EVENTS.name, seq)
        assert msg.data is not None
        ids.append(decode_envelope(msg.data).id)
    return ids


def reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(r.__dict__["reason"]) for r in caplog.records if r.getMessage() == RETRYING]


@pytest.fixture(autouse=True)
async def unprovisioned(nc: NATS) -> None:
    """These tests start without the events stream (the test server comes provisioned):
    what the publisher does before one exists is what they check."""
    await nc.jetstream().delete_stream(EVENTS.name)


async def test_send_returns_before_the_ack_and_settle_waits_for_it(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_stream(js, EVENTS)
    publisher = EventPublisher(js)
    sent = await publisher.send(started("c1"), "evt-1")
    # ``send`` did not yield after writing, so the ack cannot have been handled yet.
    assert sent.event_id == "evt-1"
    assert not sent.stored.done()
    assert publisher.unstored == 1
    assert await publisher.settle(5)
    assert sent.stored.done()
    assert publisher.unstored == 0
    msg = await js.get_msg(EVENTS.name, 1)
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == "evt-1"
    await publisher.close()


async def test_events_keep_the_order_they_were_sent_in(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_stream(js, EVENTS)
    publisher = EventPublisher(js)
    sent = [(await publisher.send(started(f"c{n}"))).event_id for n in range(100)]
    assert await publisher.settle(5)
    assert await stored_ids(js) == sent


async def test_with_no_stream_an_event_is_retried_under_its_id_until_one_exists(
    nc: NATS, caplog: pytest.LogCaptureFixture
) -> None:
    js = nc.jetstream()
    publisher = EventPublisher(js, retry_delay=0.02)
    with caplog.at_level(logging.WARNING):
        sent = await publisher.send(started("c1"))
        await eventually(lambda: "no stream" in reasons(caplog), message="the no-stream failure")
        await ensure_stream(js, EVENTS)
        assert await publisher.settle(5)
    assert await stored_ids(js) == [sent.event_id]
    record = next(r for r in caplog.records if r.getMessage() == RETRYING)
    assert record.__dict__["event_id"] == sent.event_id
    assert record.__dict__["event_type"] == "io.switchboard.call.started.v1"


async def test_a_stream_error_is_retried_with_backoff_until_the_stream_takes_it(
    nc: NATS, caplog: pytest.LogCaptureFixture
) -> None:
    js = nc.jetstream()
    config = stream_config(EVENTS)
    config.max_msgs = 1
    config.discard = DiscardPolicy.NEW  # a full stream refuses with an API error
    await js.add_stream(config)
    publisher = EventPublisher(js, timeout=0.1, retry_delay=0.02, max_retry_delay=0.05)
    first = await publisher.send(started("c1"))
    assert await publisher.settle(5)
    with caplog.at_level(logging.WARNING):
        second = await publisher.send(started("c2"))
        # nats-py 2.16 never completes the ack future of an error reply (its handler raises
        # instead of setting the exception), so the timeout is what notices it there.
        await eventually(
            lambda: bool({"stream error", "no ack in time"} & set(reasons(caplog))),
            message="the refusal",
        )
        await js.purge_stream(EVENTS.name)
        assert await publisher.settle(5)
    assert second.stored.done()
    assert await stored_ids(js) == [second.event_id]
    assert first.event_id != second.event_id


async def test_an_ack_that_never_comes_is_retried_after_the_timeout(
    nc: NATS, caplog: pytest.LogCaptureFixture
) -> None:
    js = nc.jetstream()
    # A plain subscriber takes the publish and answers nothing: no "no responders" either.
    silent = await nc.subscribe("sb.evt.>")
    await nc.flush()
    publisher = EventPublisher(js, timeout=0.1, retry_delay=0.02)
    with caplog.at_level(logging.WARNING):
        sent = await publisher.send(started("c1"))
        await eventually(lambda: "no ack in time" in reasons(caplog), message="the ack timeout")
        await ensure_stream(js, EVENTS)
        assert await publisher.settle(5)
    assert await stored_ids(js) == [sent.event_id]
    await silent.unsubscribe()


async def test_a_cancelled_event_is_given_up(nc: NATS) -> None:
    js = nc.jetstream()
    publisher = EventPublisher(js, retry_delay=0.02)
    dropped = await publisher.send(started("c1"))
    kept = await publisher.send(started("c2"))
    dropped.stored.cancel()
    await eventually(lambda: publisher.unstored == 1, message="giving the event up")
    await ensure_stream(js, EVENTS)
    assert await publisher.settle(5)
    # Retries go in order, so a dropped event still queued would be stored before this one.
    assert await stored_ids(js) == [kept.event_id]


async def test_the_caller_can_carry_a_received_trace_context(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_stream(js, EVENTS)
    publisher = EventPublisher(js)
    await publisher.send(started("c1"), "evt-t", traceparent=TRACEPARENT)
    assert await publisher.settle(5)
    msg = await js.get_msg(EVENTS.name, 1)
    assert msg.headers is not None
    assert msg.data is not None
    assert msg.headers["traceparent"] == TRACEPARENT
    assert msg.headers["Nats-Msg-Id"] == "evt-t"
    assert decode_envelope(msg.data).traceparent == TRACEPARENT


async def test_close_reports_the_ids_left_and_refuses_new_events(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_server.url)
    publisher = EventPublisher(nc.jetstream(), timeout=0.1, retry_delay=0.02)
    await nc.close()
    with caplog.at_level(logging.WARNING):
        sent = await publisher.send(started("c1"))
        assert not await publisher.settle(0.1)
        await publisher.close(timeout=0.1)
    assert publisher.unstored == 1
    assert not sent.stored.done()
    record = next(
        r for r in caplog.records if r.getMessage() == "Events could not be stored before shutdown."
    )
    assert record.__dict__["event_ids"] == [sent.event_id]
    with pytest.raises(PublisherClosed):
        await publisher.send(started("c2"))


async def test_failed_writes_do_not_use_up_nats_pys_async_publish_slots(
    nats_server: NatsServer,
) -> None:
    # nats-py keeps an ack slot for a publish_async whose write raised; with one slot a
    # second send would block for good if the publisher did not give it back.
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream(publish_async_max_pending=1)
    await ensure_stream(js, EVENTS)
    publisher = EventPublisher(js, retry_delay=0.02)
    await publisher.send(started("c0"))
    assert await publisher.settle(5)
    await nc.close()
    for n in range(3):
        await asyncio.wait_for(publisher.send(started(f"c{n + 1}")), 2)
    assert js.publish_async_pending() == 0
    assert publisher.unstored == 3
    await publisher.close(timeout=0)
