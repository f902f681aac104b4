"""The sip-bridge on a real nats-server with the simulated carrier: requests, replies,
the humans' decisions and the transfer events on the events stream."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import msgspec
import nats
import pytest
from bridge_testkit import TEST_ALLOW, BusHumans
from nats.aio.client import Client as NATS

from switchboard.contracts import (
    CancelTransfer,
    DeclineReason,
    Destination,
    ErrorCode,
    FailureReason,
    HumanDecision,
    HumanDecisionNoted,
    LegState,
    PlaceTransfer,
    ReportHumanDecision,
    TransferAccepted,
    TransferCancelled,
    TransferConnected,
    TransferFailed,
    TransferLegs,
    TransferLegsQuery,
    TransferPlaceReply,
    TransferQueued,
    TransferRejected,
)
from switchboard.contracts.envelope import decode_event
from switchboard.contracts.simulation import CarrierScripted, ScriptCarrier, SimOutcome
from switchboard.contracts.subjects import (
    TRANSFER_CANCEL,
    TRANSFER_DECIDE,
    TRANSFER_LEGS,
    TRANSFER_PLACE,
    TRANSFER_SIMULATE,
    Owner,
)
from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher, RequestFailed, request
from switchboard.sip_bridge.settings import SipBridgeSettings
from switchboard.testing import eventually

pytestmark = pytest.mark.usefixtures("no_livekit_env")

BRIDGE = Owner.SIP_BRIDGE.value

MAIN = Destination(id="billing-desk", address="+14155550100")
BACKUP = Destination(id="billing-backup", address="+14155550101")


def place(call_id: str, *destinations: Destination, **kw: Any) -> PlaceTransfer:
    return PlaceTransfer(
        call_id=call_id,
        room=f"room-{call_id}",
        caller_identity="caller",
        destinations=list(destinations or (MAIN,)),
        transfer_id=f"t-{call_id}",
        **kw,
    )


async def script(nc: NATS, call_id: str, *outcomes: SimOutcome, ring_s: float = 0.02) -> None:
    reply: CarrierScripted = await request(
        nc,
        TRANSFER_SIMULATE,
        ScriptCarrier(call_id=call_id, outcomes=list(outcomes), ring_s=ring_s),
        CarrierScripted,
        2,
    )
    assert reply.outcomes == list(outcomes)


async def place_request(nc: NATS, message: PlaceTransfer) -> TransferPlaceReply:
    reply: TransferPlaceReply = await request(nc, TRANSFER_PLACE, message, TransferPlaceReply, 2)
    return reply


async def until_serving(nc: NATS, subject: str) -> None:
    """``$SRV.PING`` answers before setup has added the endpoints; wait for the endpoint."""
    await eventually(
        lambda: nc.request(subject, b"{}", timeout=0.5),
        timeout=10,
        message=f"an answer on {subject}",
        retry_on=(nats.errors.NoRespondersError, nats.errors.TimeoutError),
    )


def names(events: list[tuple[Any, Any, Any]]) -> list[str]:
    return [event.type.split(".")[-2] for event, _, _ in events]


async def legs_of(nc: NATS, call_id: str) -> TransferLegs:
    legs: TransferLegs = await request(
        nc, TRANSFER_LEGS, TransferLegsQuery(call_id=call_id), TransferLegs, 2
    )
    return legs


async def test_an_answered_transfer_publishes_every_state_as_cloudevents_in_order(
    nc: NATS, bridge: Any, events: Any, humans: BusHumans
) -> None:
    await bridge()
    reply = await place_request(nc, place("call-a"))
    assert isinstance(reply, TransferAccepted)
    received = await events.until_end("call-a")
    assert names(received) == ["dialing", "ringing", "answered", "briefed", "connected"]
    for event, payload, msg_id in received:
        assert event.subject == "call-a"
        assert event.type.startswith("io.switchboard.transfer.")
        assert event.type.endswith(".v1")
        assert msg_id == event.id  # JetStream de-duplicates on the event id.
        assert payload.transfer_id == "t-call-a"
    assert [event.id for event, _, _ in received] == [
        "t-call-a:dialing:1",
        "t-call-a:ringing:1",
        "t-call-a:answered:1",
        "t-call-a:briefed:1",
        "t-call-a:connected:1",
    ]


async def test_busy_then_answer_fails_over_on_the_bus(
    nc: NATS, bridge: Any, events: Any, humans: BusHumans
) -> None:
    await bridge()
    await script(nc, "call-b", SimOutcome.BUSY, SimOutcome.ANSWER)
    await place_request(nc, place("call-b", MAIN, BACKUP))
    received = await events.until_end("call-b")
    assert names(received) == [
        "dialing",
        "failed",
        "dialing",
        "ringing",
        "answered",
        "briefed",
        "connected",
    ]
    busy = received[1][1]
    assert isinstance(busy, TransferFailed)
    assert (busy.reason, busy.sip_status, busy.final, busy.destination_id) == (
        FailureReason.BUSY,
        486,
        False,
        "billing-desk",
    )
    connected = received[-1][1]
    assert isinstance(connected, TransferConnected)
    assert connected.destination_id == "billing-backup"


async def test_when_all_destinations_fail_the_stream_ends_with_a_final_failure(
    nc: NATS, bridge: Any, events: Any
) -> None:
    await bridge()
    await script(nc, "call-c", SimOutcome.DECLINE, SimOutcome.NO_ANSWER)
    await place_request(nc, place("call-c", MAIN, BACKUP))
    received = await events.until_end("call-c")
    final = received[-1][1]
    assert isinstance(final, TransferFailed)
    assert (final.reason, final.final) == (FailureReason.ALL_DESTINATIONS_FAILED, True)
    reasons = [p.reason for _, p, _ in received if isinstance(p, TransferFailed)]
    assert reasons == [
        FailureReason.DECLINED,
        FailureReason.NO_ANSWER,
        FailureReason.ALL_DESTINATIONS_FAILED,
    ]


async def test_a_transfer_cancelled_while_ringing_ends_with_cancelled(
    nc: NATS, bridge: Any, events: Any
) -> None:
    await bridge()
    await script(nc, "call-d", SimOutcome.ANSWER, ring_s=10.0)
    await place_request(nc, place("call-d", MAIN, BACKUP))
    js = nc.jetstream()
    sub = await js.subscribe("sb.evt.transfer.ringing.call-d", ordered_consumer=True)
    await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    reply: TransferCancelled = await request(
        nc,
        TRANSFER_CANCEL,
        CancelTransfer(call_id="call-d", transfer_id="t-call-d", reason="caller hung up"),
        TransferCancelled,
        3,
    )
    assert reply.reason == "caller hung up"
    received = await events.until_end("call-d")
    assert names(received) == ["dialing", "ringing", "cancelled"]


async def test_a_refused_transfer_is_a_typed_rejection_and_nothing_is_dialled(
    nc: NATS, bridge: Any, events: Any
) -> None:
    await bridge()
    premium = Destination(id="premium", address="+19005550100")
    reply = await place_request(nc, place("call-e", premium))
    assert isinstance(reply, TransferRejected)
    assert reply.reason is FailureReason.REJECTED_BY_POLICY
    received = await events.until_end("call-e")
    assert "dialing" not in names(received)
    assert received[-1][1].reason is FailureReason.REJECTED_BY_POLICY


async def test_an_address_with_a_smuggled_newline_is_refused_at_the_contract(
    nc: NATS, bridge: Any
) -> None:
    await bridge()
    body = msgspec.json.encode(place("call-f"))
    body = body.replace(b'"+14155550100"', b'"+14155550100\\n"')
    msg = await nc.request(TRANSFER_PLACE, body, timeout=2)
    assert msg.headers is not None
    assert msg.headers["Nats-Service-Error-Code"] == "400"
    error = msgspec.json.decode(msg.data)
    assert error["code"] == "bad_request"
    assert error["field"] == "$.destinations[0].address"
    # Nothing was dialled for that call: the bridge never saw a transfer for it.
    stream = await nc.jetstream().stream_info("SB_EVENTS")
    assert stream.state.messages == 0


@pytest.mark.parametrize(
    ("subject", "body", "field", "fragment"),
    [
        (TRANSFER_PLACE, b"{not json", "$", "not valid JSON"),
        (TRANSFER_PLACE, b'{"call_id": 7}', "$.call_id", "Expected `str`"),
        (
            TRANSFER_PLACE,
            b'{"call_id": "c", "room": "r", "caller_identity": "x"}',
            "$.destinations",
            "missing required field `destinations`",
        ),
        (
            TRANSFER_PLACE,
            b'{"call_id": "c", "room": "r", "caller_identity": "x", "destinations": []}',
            "$.destinations",
            "length",
        ),
        (
            TRANSFER_PLACE,
            b'{"call_id": "c", "room": "r", "caller_identity": "x", '
            b'"destinations": [{"id": "d", "address": "call me maybe"}]}',
            "$.destinations[0].address",
            "regex",
        ),
        (TRANSFER_CANCEL, b"[]", "$", "Expected `object`"),
        (
            TRANSFER_CANCEL,
            b'{"call_id": "c"}',
            "$.transfer_id",
            "missing required field `transfer_id`",
        ),
        (
            TRANSFER_SIMULATE,
            b'{"call_id": "c", "outcomes": ["explode"]}',
            "$.outcomes[0]",
            "Invalid",
        ),
        (
            TRANSFER_DECIDE,
            b'{"call_id": "c", "transfer_id": "t", "attempt": 0, "decision": "accept"}',
            "$.attempt",
            ">= 1",
        ),
        (
            TRANSFER_DECIDE,
            b'{"call_id": "c", "transfer_id": "t", "attempt": 1, "decision": "maybe"}',
            "$.decision",
            "Invalid enum value",
        ),
        (TRANSFER_LEGS, b'{"call_id": "no spaces allowed"}', "$.call_id", "regex"),
    ],
)
async def test_malformed_requests_get_a_typed_error_and_the_bridge_keeps_serving(
    nc: NATS,
    bridge: Any,
    events: Any,
    humans: BusHumans,
    subject: str,
    body: bytes,
    field: str,
    fragment: str,
) -> None:
    await bridge()
    msg = await nc.request(subject, body, timeout=2)
    assert msg.headers is not None
    assert msg.headers["Nats-Service-Error-Code"] == "400"
    error = json.loads(msg.data)
    assert error["code"] == "bad_request"
    assert fragment in error["message"]
    assert error["field"] == field
    assert error["subject"] == subject
    reply = await place_request(nc, place("call-ok"))
    assert isinstance(reply, TransferAccepted)
    assert names(await events.until_end("call-ok"))[-1] == "connected"


async def test_cancelling_an_unknown_transfer_is_not_found(nc: NATS, bridge: Any) -> None:
    await bridge()
    with pytest.raises(RequestFailed) as failed:
        await request(
            nc,
            TRANSFER_CANCEL,
            CancelTransfer(call_id="call-g", transfer_id="nope"),
            TransferCancelled,
            2,
        )
    assert failed.value.error.code is ErrorCode.NOT_FOUND
    assert failed.value.error.field == "$.transfer_id"


async def test_a_transfer_id_reused_by_another_call_is_refused_with_a_typed_error(
    nc: NATS, bridge: Any, events: Any, humans: BusHumans
) -> None:
    await bridge()
    await place_request(nc, place("call-h"))
    with pytest.raises(RequestFailed) as failed:
        await place_request(nc, msgspec.structs.replace(place("call-i"), transfer_id="t-call-h"))
    assert failed.value.error.code is ErrorCode.REJECTED
    await events.until_end("call-h")


async def test_a_republished_event_is_dropped_by_the_stream(
    nc: NATS, bridge: Any, events: Any, humans: BusHumans
) -> None:
    await bridge()
    await place_request(nc, place("call-j"))
    received = await events.until_end("call-j")
    js = nc.jetstream()
    before = (await js.stream_info("SB_EVENTS")).state.messages
    event, payload, _ = received[0]
    await EventPublisher(js).publish(payload, event_id=event.id)
    after = (await js.stream_info("SB_EVENTS")).state.messages
    assert after == before


async def test_the_simulated_bridge_serves_every_transfer_request_in_its_queue_group(
    nc: NATS, bridge: Any
) -> None:
    await bridge()
    msg = await nc.request(f"$SRV.INFO.{BRIDGE}", b"", timeout=2)
    info = json.loads(msg.data)
    assert sorted(e["subject"] for e in info["endpoints"]) == [
        TRANSFER_CANCEL,
        TRANSFER_DECIDE,
        TRANSFER_LEGS,
        TRANSFER_PLACE,
        TRANSFER_SIMULATE,
    ]
    assert {e["queue_group"] for e in info["endpoints"]} == {BRIDGE}


async def test_a_human_who_declines_on_the_bus_is_replaced_by_the_next_destination(
    nc: NATS, bridge: Any, events: Any, humans: BusHumans
) -> None:
    await bridge()
    humans.decisions.extend([(HumanDecision.DECLINE, DeclineReason.WRONG_TEAM)])
    await place_request(nc, place("call-h", MAIN, BACKUP, consult_room="room-call-h-consult-1"))
    received = await events.until_end("call-h")
    assert names(received) == [
        "dialing",
        "ringing",
        "answered",
        "failed",
        "dialing",
        "ringing",
        "answered",
        "briefed",
        "connected",
    ]
    failed = received[3][1]
    assert isinstance(failed, TransferFailed)
    assert (failed.reason, failed.detail) == (FailureReason.HUMAN_DECLINED, "declined: wrong_team")
    assert [n.decision for n in humans.noted] == [HumanDecision.DECLINE, HumanDecision.ACCEPT]
    assert humans.refused == []

    async def no_leg_left() -> TransferLegs:
        legs = await legs_of(nc, "call-h")
        assert legs.in_progress == []
        return legs

    legs = await eventually(no_leg_left)
    assert [(leg.attempt, leg.destination_id, leg.state) for leg in legs.legs] == [
        (1, "billing-desk", LegState.ENDED),
        (2, "billing-backup", LegState.ENDED),
    ]


async def test_a_decision_out_of_turn_or_for_no_transfer_gets_a_typed_error(
    nc: NATS, bridge: Any
) -> None:
    await bridge()
    report = ReportHumanDecision(
        call_id="call-i", transfer_id="t-call-i", attempt=1, decision=HumanDecision.ACCEPT
    )
    with pytest.raises(RequestFailed) as unknown:
        await request(nc, TRANSFER_DECIDE, report, HumanDecisionNoted, 2)
    assert unknown.value.error.code is ErrorCode.NOT_FOUND
    await script(nc, "call-i", SimOutcome.ANSWER, ring_s=10.0)
    await place_request(nc, place("call-i"))

    async def dialled() -> bool:
        return bool((await legs_of(nc, "call-i")).legs)

    await eventually(dialled)
    with pytest.raises(RequestFailed) as early:  # Still ringing: nobody to decide yet.
        await request(nc, TRANSFER_DECIDE, report, HumanDecisionNoted, 2)
    assert early.value.error.code is ErrorCode.REJECTED
    assert early.value.error.field == "$.attempt"


@pytest.mark.slow
async def test_fifty_transfers_at_once_with_the_default_limits_all_connect(
    nc: NATS, bridge: Any, humans: BusHumans
) -> None:
    """A busy moment is a queue: with the default calls-per-second (1, burst 5) and
    concurrency (20) caps, none of 50 simultaneous transfers is refused for rate."""
    defaults = SipBridgeSettings()
    await bridge(
        transfer_cps=defaults.transfer_cps,
        transfer_burst=defaults.transfer_burst,
        transfer_max_concurrent=defaults.transfer_max_concurrent,
        transfer_max_queued=defaults.transfer_max_queued,
        transfer_queue_max_wait_s=defaults.transfer_queue_max_wait_s,
    )
    ends: dict[str, str] = {}
    queued: dict[str, TransferQueued] = {}

    async def on_event(msg: Any) -> None:
        _, payload = decode_event(msg.data)
        if isinstance(payload, TransferQueued):
            queued[payload.call_id] = payload
        elif isinstance(payload, TransferConnected):
            ends[payload.call_id] = "connected"
        elif isinstance(payload, TransferFailed) and payload.final:
            ends[payload.call_id] = payload.reason.value

    await nc.subscribe("sb.evt.transfer.>", cb=on_event)
    calls = [f"busy-{n:02d}" for n in range(50)]
    replies = await asyncio.gather(*(place_request(nc, place(c)) for c in calls))
    assert [type(r) for r in replies] == [TransferAccepted] * 50
    await eventually(lambda: len(ends) == 50, timeout=90, message="50 transfers ending")
    assert set(ends.values()) == {"connected"}
    assert len(queued) == 45  # The burst of 5 dialled at once; the others waited in line.
    assert sorted(q.position for q in queued.values()) == list(range(1, 46))
    assert humans.refused == []


async def test_the_entry_point_serves_and_fails_in_flight_transfers_on_sigterm(
    nats_server: NatsServer, nc: NATS, events: Any, tmp_path: Any
) -> None:
    process = ServiceProcess(
        module="switchboard.sip_bridge",
        service=BRIDGE,
        env={
            "SB_NATS_URL": nats_server.url,
            "SB_CARRIER_DRIVER": "simulated",
            "SB_TRANSFER_ALLOW": TEST_ALLOW,
            "SB_TRANSFER_DRAIN_S": "0.2",
        },
        log_path=tmp_path / "sip-bridge.log",
    ).start()
    try:
        await process.ready(nats_server.url)
        await until_serving(nc, TRANSFER_SIMULATE)
        await script(nc, "call-k", SimOutcome.ANSWER, ring_s=20.0)
        await place_request(nc, place("call-k"))
        js = nc.jetstream()
        sub = await js.subscribe("sb.evt.transfer.ringing.call-k", ordered_consumer=True)
        await sub.next_msg(timeout=5)
        await sub.unsubscribe()
        process.signal(signal.SIGTERM)
        received = await events.until_end("call-k")
        final = received[-1][1]
        assert isinstance(final, TransferFailed)
        assert (final.reason, final.final, final.detail) == (
            FailureReason.CARRIER_ERROR,
            True,
            "the bridge shut down",
        )
        # One SIGTERM is the whole shutdown: the process drains and exits by itself.
        assert process.process is not None
        assert await asyncio.to_thread(process.process.wait, 10) == 0
    finally:
        process.stop()
    log_text = (tmp_path / "sip-bridge.log").read_text()
    assert "Service ready." in log_text
    assert "+1415555" not in log_text
