"""The router on a real nats-server: replies, typed errors, decision events, live queue state."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from nats.micro import add_service

from switchboard.contracts import streams
from switchboard.contracts.envelope import decode_event, spec_for
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.escalation import (
    EscalationReason,
    EscalationRequest,
    EscalationTrigger,
    HandoffDecision,
    HandoffTarget,
)
from switchboard.contracts.subjects import ESCALATION_DECIDE, Owner
from switchboard.devstack.natsserver import NatsServer
from switchboard.escalation.app import build_setup
from switchboard.escalation.rules_file import load_rules
from switchboard.escalation.settings import EscalationSettings
from switchboard.runtime.bus import RequestFailed, connect, ensure_stream, request
from switchboard.runtime.service import Runtime
from switchboard.testing import eventually

RULES = Path(__file__).parent / "data" / "rules.toml"
WEDNESDAY_10AM = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)
WEDNESDAY_10PM = dt.datetime(2026, 3, 5, 3, 0, tzinfo=dt.UTC)
DECIDED = spec_for(HandoffDecision)
ROUTER = Owner.ESCALATION.value

StartRouter = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def start_router(nats_server: NatsServer) -> AsyncIterator[StartRouter]:
    """Start the router in this process, as ``run_service`` would, with a fixed clock."""
    running: list[tuple[Runtime, Callable[[], Awaitable[None]]]] = []

    async def start(clock: dt.datetime = WEDNESDAY_10AM, **options: Any) -> Runtime:
        settings = EscalationSettings(
            nats_url=nats_server.url, rules_file=str(RULES), instance="router-test", **options
        )
        nc = await connect(settings, ROUTER)
        service = await add_service(nc, name=ROUTER, version="0.0.1", queue_group=ROUTER)
        rt = Runtime(nc=nc, js=nc.jetstream(), service=service, settings=settings, name=ROUTER)
        cleanup = await build_setup(load_rules(RULES), lambda: clock)(rt)
        assert cleanup is not None
        running.append((rt, cleanup))
        # nats-py's flush() can overtake buffered SUBs; a request on the same connection
        # cannot, so once $SRV.PING answers, the endpoint's subscription is live too.
        await nc.request("$SRV.PING.escalation", b"", timeout=5)
        return rt

    yield start
    for rt, cleanup in running:
        await rt.service.stop()
        await cleanup()
        await rt.nc.drain()


def escalation(call_id: str = "call-1", **fields: Any) -> EscalationRequest:
    base: dict[str, Any] = {
        "call_id": call_id,
        "reason": EscalationReason.CALLER_REQUEST,
        "trigger": EscalationTrigger.PHRASE,
        "current_agent": "triage",
        "intent": "billing",
        "wants_human": True,
    }
    return EscalationRequest(**(base | fields))


async def decide(nc: NATS, req: EscalationRequest) -> HandoffDecision:
    decision: HandoffDecision = await request(nc, ESCALATION_DECIDE, req, HandoffDecision, 5)
    return decision


async def raw_error(nc: NATS, body: bytes) -> dict[str, Any]:
    msg = await nc.request(ESCALATION_DECIDE, body, timeout=5)
    assert msg.headers is not None
    assert msg.headers["Nats-Service-Error-Code"] == "400"
    error: dict[str, Any] = json.loads(msg.data)
    assert error["code"] == "bad_request"
    assert error["subject"] == ESCALATION_DECIDE
    return error


async def stored_decision(nc: NATS, call_id: str, within: float = 10.0) -> RawStreamMsg:
    """The decision event of ``call_id`` once it is on the stream (it is published as the
    reply goes out, and stored a moment later)."""
    js = nc.jetstream()
    stored: RawStreamMsg = await eventually(
        lambda: js.get_last_msg(streams.EVENTS.name, DECIDED.subject(call_id)),
        timeout=within,
        message=f"the decision event of {call_id} on the stream",
        retry_on=(NotFoundError,),
    )
    return stored


async def stored_events(nc: NATS, call_id: str) -> int:
    info = await nc.jetstream().stream_info(
        streams.EVENTS.name, subjects_filter=DECIDED.subject(call_id)
    )
    return int((info.state.subjects or {}).get(DECIDED.subject(call_id), 0))


async def test_a_decision_is_answered_and_published_as_a_cloudevent_on_the_events_stream(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    decision = await decide(nc, escalation("call-event"))
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.queue == "billing"
    assert [d.id for d in decision.destinations] == ["billing-1", "billing-2"]

    stored = await stored_decision(nc, "call-event")
    assert stored.data is not None
    event, payload = decode_event(stored.data)
    assert event.type == "io.switchboard.escalation.decided.v1"
    assert event.subject == "call-event"
    assert event.source == "urn:switchboard:escalation"
    assert event.id == decision.decision_id
    assert (stored.headers or {}).get("Nats-Msg-Id") == decision.decision_id
    assert payload == decision


async def test_malformed_json_gets_a_typed_error_and_the_router_keeps_serving(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    error = await raw_error(nc, b'{"call_id": "c1", ')
    assert error["message"].startswith("Request body is not valid JSON")
    assert (await decide(nc, escalation())).target is HandoffTarget.HUMAN_QUEUE


async def test_a_wrong_type_gets_a_typed_error_naming_the_field(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    body = msgspec.json.encode(escalation()).replace(b'"attempts":0', b'"attempts":"three"')
    error = await raw_error(nc, body)
    assert error["field"] == "$.attempts"
    assert "Expected `int`" in error["message"]


async def test_a_missing_field_gets_a_typed_error_naming_it(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    error = await raw_error(nc, b'{"reason": "caller_request", "trigger": "phrase"}')
    assert "missing required field `call_id`" in error["message"]


async def test_an_unknown_reason_gets_a_typed_error_naming_the_field(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    body = msgspec.json.encode(escalation()).replace(b'"caller_request"', b'"boredom"')
    error = await raw_error(nc, body)
    assert error["field"] == "$.reason"


async def test_negative_attempts_are_refused_by_the_router(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    with pytest.raises(RequestFailed) as info:
        await decide(nc, escalation(attempts=-1))
    assert info.value.error.code is ErrorCode.BAD_REQUEST
    assert info.value.error.field == "$.attempts"


async def test_a_retried_request_is_recorded_once(start_router: StartRouter, nc: NATS) -> None:
    await start_router()
    req = escalation("call-retry", request_id="req-same")
    first = await decide(nc, req)
    await stored_decision(nc, "call-retry")
    second = await decide(nc, req)
    assert first.decision_id == second.decision_id
    # The router writes each event ahead of its reply on one connection, and the stream
    # takes them in order: once a later call's event is stored, the retry's was handled.
    await decide(nc, escalation("call-after-retry"))
    await stored_decision(nc, "call-after-retry")
    assert await stored_events(nc, "call-retry") == 1


async def test_business_hours_follow_the_injected_clock(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router(clock=WEDNESDAY_10PM)
    decision = await decide(nc, escalation())
    assert decision.target is HandoffTarget.VOICEMAIL
    assert decision.decided_at == WEDNESDAY_10PM


async def test_queue_state_from_the_kv_bucket_changes_the_decision(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router(queue_state_bucket="sb_queue_state", queue_state_ttl_s=0.0)
    kv = await nc.jetstream().key_value("sb_queue_state")
    assert (await decide(nc, escalation("call-kv-1"))).queue == "billing"

    # The workforce system reports billing swamped, then the front desk too.
    await kv.put("billing", b'{"waiting": 12, "agents_available": 2}')
    overflowed = await decide(nc, escalation("call-kv-2"))
    assert overflowed.queue == "general"
    assert "billing has 12 callers waiting (limit 4)." in [
        h.explanation for h in overflowed.rules_fired
    ]
    await kv.put("general", b'{"waiting": 0, "agents_available": 0}')
    assert (await decide(nc, escalation("call-kv-3"))).target is HandoffTarget.CALLBACK

    await kv.delete("billing")
    assert (await decide(nc, escalation("call-kv-4"))).queue == "billing"


async def test_many_concurrent_requests_are_all_answered_and_recorded(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    calls = [f"call-many-{i}" for i in range(300)]
    decisions = await asyncio.gather(*(decide(nc, escalation(c)) for c in calls))
    assert [d.call_id for d in decisions] == calls
    for call in calls:
        await stored_decision(nc, call)
    info = await nc.jetstream().stream_info(streams.EVENTS.name)
    assert info.state.messages == len(calls)


async def test_a_decision_made_while_the_stream_is_gone_is_published_once_it_is_back(
    start_router: StartRouter, nc: NATS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="switchboard.runtime.bus")
    await start_router(event_ack_timeout_s=0.2)
    js = nc.jetstream()
    await js.delete_stream(streams.EVENTS.name)

    decision = await decide(nc, escalation("call-late"))
    assert decision.target is HandoffTarget.HUMAN_QUEUE  # the caller is not kept waiting

    # The first attempt fails (there is no stream) and the event goes to the retry loop.
    await eventually(
        lambda: any(
            r.getMessage() == "Event not stored yet; retrying in the background."
            and r.__dict__.get("event_id") == decision.decision_id
            for r in caplog.records
        ),
        message="the router to hand the event to its retry loop",
    )
    await ensure_stream(js, streams.EVENTS)
    stored = await stored_decision(nc, "call-late")
    assert stored.data is not None
    assert decode_event(stored.data)[1] == decision


async def test_the_router_is_discoverable_as_the_escalation_service(
    start_router: StartRouter, nc: NATS
) -> None:
    await start_router()
    info = json.loads((await nc.request("$SRV.INFO.escalation", b"", timeout=2)).data)
    assert info["name"] == "escalation"
    assert [e["subject"] for e in info["endpoints"]] == [ESCALATION_DECIDE]
    assert info["endpoints"][0]["queue_group"] == "escalation"


async def test_the_decision_event_goes_out_before_the_reply(
    start_router: StartRouter, nc: NATS
) -> None:
    # A watcher on the same connection receives messages in the order the server sent them:
    # the event must already be there when the reply arrives, so anything the caller does
    # with the decision (a transfer) comes after it on the bus.
    await start_router()
    watcher = await nc.subscribe(DECIDED.wildcard)
    for n in range(20):
        decision = await decide(nc, escalation(f"call-order-{n}"))
        assert watcher.pending_msgs == 1, n
        event, _ = decode_event((await watcher.next_msg(timeout=1)).data)
        assert event.id == decision.decision_id
