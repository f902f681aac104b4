"""Call events: numbered per call, written at once, acknowledged in the background, kept
in the outbox (in memory, bounded, and on disk) until stored, all stored by the end."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from switchboard.contracts import streams
from switchboard.contracts.call import CallStarted
from switchboard.contracts.envelope import decode_envelope
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher, ensure_stream
from switchboard.voice.clients.events import CallEvents
from switchboard.voice.clients.outbox import EventOutbox
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
    events = CallEvents(bus.outbox)
    event_id = await events.publish(_started("c-1", 0))
    # ``publish`` never yielded, so the ack cannot have been handled yet.
    assert event_id is not None
    assert bus.events.unstored == 1
    await events.settle()
    assert bus.events.unstored == 0
    assert await _stored_ids(bus) == [event_id]


async def test_a_calls_events_are_stored_in_the_order_they_happened(bus: Bus) -> None:
    events = CallEvents(bus.outbox)
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
        events = CallEvents(EventOutbox(acks))
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
    events = CallEvents(EventOutbox(acks))
    await nc.close()
    with caplog.at_level(logging.WARNING):
        await events.publish(_started("c-4", 0))
        await events.settle(timeout=0.3)
        await acks.close(timeout=0.1)
    assert acks.unstored == 1
    assert "Call events not stored by the end of the call; still retrying." in caplog.messages
    assert "Events could not be stored before shutdown." in caplog.messages


async def test_a_calls_events_are_numbered_from_one_with_no_gap(bus: Bus) -> None:
    events = CallEvents(bus.outbox)
    sent = [await events.publish(_started("c-5", n)) for n in range(12)]
    await events.settle()
    stored = [decode_envelope(m) for m in await _stored_bodies(bus)]
    assert [e.id for e in stored] == sent
    assert [e.sequence for e in stored] == [str(n).zfill(10) for n in range(1, 13)]
    assert {e.source for e in stored} == {"urn:switchboard:voice"}
    assert events.sequence == 12


async def test_beyond_its_bound_the_outbox_keeps_events_on_disk_in_order(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.delete_stream(streams.EVENTS.name)  # nothing is stored for now
        outbox = EventOutbox(EventPublisher(js, retry_delay=0.05), tmp_path, max_in_flight=2)
        assert outbox.open() == 0
        events = CallEvents(outbox)
        sent = [await events.publish(_started("c-6", n)) for n in range(5)]
        assert outbox.backlog == 3, "two in flight, the rest wait behind them"
        assert outbox.directory is not None
        assert len(_kept(outbox.directory, "*.event")) == 5
        await ensure_stream(js, streams.EVENTS)
        await events.settle(timeout=10.0)
        stored = [decode_envelope(m) for m in await _stream_bodies(js)]
        assert [e.id for e in stored] == sent
        assert [int(e.sequence or 0) for e in stored] == [1, 2, 3, 4, 5]
        assert not _kept(outbox.directory, "*.event"), "stored events leave the disk"
        await outbox.close()
    finally:
        await nc.close()


DYING_WORKER = """
import asyncio, sys
from pathlib import Path
import nats
from switchboard.contracts.call import CallStarted
from switchboard.runtime.bus import EventPublisher
from switchboard.voice.clients.events import CallEvents
from switchboard.voice.clients.outbox import EventOutbox

async def main(url: str, directory: str) -> None:
    nc = await nats.connect(url)
    outbox = EventOutbox(EventPublisher(nc.jetstream(), retry_delay=0.05), Path(directory))
    outbox.open()
    events = CallEvents(outbox)
    for n in range(3):
        await events.publish(CallStarted(call_id="c-dead", room=f"room-{n}"))
    print("sent", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_the_events_of_a_killed_worker_process_are_published_by_the_next(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """A job process dies with three events the stream has not stored: the next process
    to open the outbox publishes them with their ids and numbers; a live process's
    events are left to it."""
    nc = await nats.connect(nats_server.url)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DYING_WORKER,
        nats_server.url,
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        js = nc.jetstream()
        await js.delete_stream(streams.EVENTS.name)  # the worker's events go nowhere
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line.strip() == b"sent"
        assert len(_kept(tmp_path)) == 3
        # While it lives, its directory is its own.
        probe = EventOutbox(EventPublisher(js), tmp_path)
        assert probe.open() == 0
        await probe.close()
        child.kill()
        await child.wait()
        await ensure_stream(js, streams.EVENTS)
        outbox = EventOutbox(EventPublisher(js, retry_delay=0.05), tmp_path)
        assert outbox.open() == 3
        assert await outbox.settle(timeout=10.0)
        stored = [decode_envelope(m) for m in await _stream_bodies(js)]
        assert [(e.subject, e.sequence) for e in stored] == [
            ("c-dead", "0000000001"),
            ("c-dead", "0000000002"),
            ("c-dead", "0000000003"),
        ]
        assert not _kept(tmp_path)
        await outbox.close()
        assert not _kept(tmp_path, "*"), "the dead process's directory is gone"
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await nc.close()


async def _stream_bodies(js: JetStreamContext) -> list[bytes]:
    info = await js.stream_info(streams.EVENTS.name)
    bodies = []
    for seq in range(int(info.state.first_seq), int(info.state.last_seq) + 1):
        msg = await js.get_msg(streams.EVENTS.name, seq)
        assert msg.data is not None
        bodies.append(msg.data)
    return bodies


async def _stored_bodies(bus: Bus) -> list[bytes]:
    return await _stream_bodies(bus.js)


def _kept(directory: Path, pattern: str = "*/*.event") -> list[Path]:
    """The outbox files under ``directory`` (every process's directory by default)."""
    return sorted(directory.glob(pattern))
