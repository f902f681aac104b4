"""Event publishing and trace propagation against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from switchboard.contracts import CallStarted, decode_event
from switchboard.contracts.streams import EVENTS
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime import telemetry
from switchboard.runtime.bus import EventPublisher, connect, ensure_stream
from switchboard.runtime.settings import ServiceSettings
from switchboard.testing import eventually


async def test_an_event_is_stored_once_even_when_published_twice(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_stream(js, EVENTS)
    await ensure_stream(js, EVENTS)  # idempotent: every process may call it
    publisher = EventPublisher(js)
    payload = CallStarted(call_id="c1", room="r1")
    first = await publisher.publish(payload, event_id="evt-1")
    second = await publisher.publish(payload, event_id="evt-1")
    assert first == second == "evt-1"
    info = await js.stream_info(EVENTS.name)
    assert info.state.messages == 1
    msg = await js.get_msg(EVENTS.name, subject="sb.evt.call.started.c1")
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == "evt-1"
    assert msg.data is not None
    event, decoded = decode_event(msg.data)
    assert decoded == payload
    assert event.source == "urn:switchboard:voice"


async def test_every_event_is_sent_in_the_cloudevents_structured_content_mode(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_stream(js, EVENTS)
    publisher = EventPublisher(js, source="voice/test")
    await publisher.publish(CallStarted(call_id="ct1", room="r1"))
    await publisher.publish(
        CallStarted(call_id="ct2", room="r1"),
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    await publisher.send(CallStarted(call_id="ct3", room="r1"))
    await publisher.settle()
    for call_id in ("ct1", "ct2", "ct3"):
        msg = await js.get_msg(EVENTS.name, subject=f"sb.evt.call.started.{call_id}")
        assert msg.headers is not None
        assert msg.headers["Content-Type"] == "application/cloudevents+json"
        assert msg.data is not None
        # The body is the structured CloudEvent as before: the header changes nothing in it.
        event, _ = decode_event(msg.data)
        assert event.subject == call_id


async def test_trace_context_crosses_nats_headers(nc: NATS) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    received: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        received.set_result(dict(msg.headers or {}))

    await nc.subscribe("sb.test.trace", cb=on_msg)
    with tracer.start_as_current_span("producer") as producer:
        await nc.publish("sb.test.trace", b"x", headers=telemetry.inject())
        trace_id = producer.get_span_context().trace_id
    headers = await asyncio.wait_for(received, 2)
    assert "traceparent" in headers
    ctx = telemetry.extract(headers)
    with tracer.start_as_current_span("consumer", context=ctx) as consumer:
        assert consumer.get_span_context().trace_id == trace_id
    assert trace.get_current_span() is not None


def test_span_names_hide_the_call_id() -> None:
    assert telemetry.span_name("sb.evt.call.started.abc123") == "sb.evt.call.started.{call_id}"
    assert telemetry.span_name("sb.cmd.consent.record.abc") == "sb.cmd.consent.record.{call_id}"
    assert telemetry.span_name("sb.consent.policy") == "sb.consent.policy"


async def test_a_deliberate_close_is_not_logged_as_a_lost_connection(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServiceSettings(nats_url=nats_server.url)
    nc = await connect(settings, "test")
    with caplog.at_level(logging.INFO):
        await nc.drain()
    assert "Disconnected from NATS; reconnecting." not in caplog.messages


async def test_a_lost_connection_is_logged_and_reconnects(tmp_path: Path) -> None:
    server = NatsServer(store_dir=tmp_path / "nats").start()
    port = server.port
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    bus_log = logging.getLogger("switchboard.runtime.bus")
    bus_log.addHandler(handler)
    previous_level = bus_log.level
    bus_log.setLevel(logging.INFO)
    try:
        nc = await connect(ServiceSettings(nats_url=server.url), "test")
        server.stop()
        await eventually(lambda: "Disconnected from NATS; reconnecting." in records)
        server = NatsServer(port=port, store_dir=tmp_path / "nats").start()
        await eventually(lambda: nc.is_connected, timeout=10)
        await eventually(lambda: "Reconnected to NATS." in records)
        await nc.close()
    finally:
        bus_log.removeHandler(handler)
        bus_log.setLevel(previous_level)
        server.stop()


def test_without_a_tracer_provider_the_incoming_trace_still_flows_downstream() -> None:
    assert not telemetry.tracing_enabled(), "no test installs a global provider"
    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with telemetry.consumer_span("sb.escalation.decide", incoming):
        outgoing = telemetry.inject()
    assert outgoing["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert "traceparent" not in telemetry.inject(), "the context is detached afterwards"


async def test_replies_come_to_an_inbox_named_for_the_process(nats_server: NatsServer) -> None:
    # With NATS permissions on, each process may subscribe only under _INBOX.<its role>.
    nc = await connect(ServiceSettings(nats_url=nats_server.url), "sip-bridge")
    try:
        assert nc.new_inbox().startswith("_INBOX.sip-bridge.")
    finally:
        await nc.close()
    with pytest.raises(ValueError, match="one subject token"):
        await connect(ServiceSettings(nats_url=nats_server.url), "voice worker")


async def test_a_request_on_a_closed_connection_is_unavailable_not_an_exception(
    nats_server: NatsServer,
) -> None:
    """Every failure to reach a service takes the caller's one fallback path: a request
    on a connection that has closed (the worker shutting down as a call ends) raised
    nats-py's ``ConnectionClosedError`` past ``request``, and a background cancel of a
    transfer died with "Task exception was never retrieved"."""
    import nats

    from switchboard.contracts import ConsentPolicy, ConsentPolicyQuery
    from switchboard.contracts.errors import ErrorCode
    from switchboard.contracts.subjects import CONSENT_POLICY
    from switchboard.runtime.bus import RequestFailed, request

    closed = await nats.connect(nats_server.url)
    await closed.close()
    with pytest.raises(RequestFailed) as failed:
        await request(closed, CONSENT_POLICY, ConsentPolicyQuery(call_id="c"), ConsentPolicy, 1)
    assert failed.value.error.code is ErrorCode.UNAVAILABLE
    assert failed.value.error.subject == CONSENT_POLICY
