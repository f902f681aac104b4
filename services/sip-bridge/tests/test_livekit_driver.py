"""The real LiveKit driver against a LiveKit server double speaking Twirp on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.contracts import (
    CancelTransfer,
    Destination,
    FailureReason,
    HandoffContext,
    PlaceTransfer,
    TransferAccepted,
    TransferAnswered,
    TransferFailed,
    TransferMode,
    TransferPlaceReply,
)
from switchboard.contracts.subjects import TRANSFER_CANCEL, TRANSFER_PLACE
from switchboard.runtime.bus import request
from switchboard.sip_bridge.assembly import Bridge, build_bridge
from switchboard.sip_bridge.drivers.base import DialFailed, DialPlan
from switchboard.sip_bridge.drivers.livekit import LiveKitCarrier, human_identity
from switchboard.sip_bridge.drivers.sip_headers import handoff_headers
from switchboard.sip_bridge.settings import LiveKitCredentials, SipBridgeSettings
from switchboard.testing import eventually

MAIN = Destination(id="billing-desk", address="+14155550100", label="Billing")
BACKUP = Destination(id="billing-backup", address="+14155550101")
WHISPER = "Jane Roe, refund for order 7731"
CONTEXT = HandoffContext(summary=WHISPER, intent="billing", collected={"email": "j@example.com"})


def settings(double: Any, **overrides: Any) -> SipBridgeSettings:
    values: dict[str, Any] = {
        "carrier_driver": "livekit",
        "livekit_url": double.url,
        "livekit_api_key": double.api_key,
        "livekit_api_secret": double.api_secret,
        "livekit_sip_trunk_id": "ST_main",
        "livekit_status_poll_s": 0.01,
        "transfer_allow": "+1415555*,sip:*@pbx.example.com",
        "transfer_cps": 100.0,
        "transfer_burst": 100,
    }
    values.update(overrides)
    return SipBridgeSettings(**values)


@pytest.fixture
async def bridge_on_double(livekit_double: Any, sink: Any) -> AsyncIterator[Bridge]:
    bridge = build_bridge(settings(livekit_double), sink, environ={})
    try:
        yield bridge
    finally:
        await bridge.desk.drain(1.0)
        await bridge.driver.aclose()


@pytest.fixture
async def carrier(livekit_double: Any) -> AsyncIterator[LiveKitCarrier]:
    credentials = LiveKitCredentials(
        livekit_double.url, livekit_double.api_key, livekit_double.api_secret
    )
    driver = LiveKitCarrier(credentials, trunk_id="ST_main", status_poll_s=0.01)
    try:
        yield driver
    finally:
        await driver.aclose()


def place(*destinations: Destination, **kw: Any) -> PlaceTransfer:
    return PlaceTransfer(
        call_id="call-1",
        room="room-1",
        caller_identity="caller",
        destinations=list(destinations or (MAIN,)),
        transfer_id="t-1",
        ring_timeout_s=15,
        **kw,
    )


def plan(destination: Destination = MAIN, mode: TransferMode = TransferMode.WARM) -> DialPlan:
    return DialPlan(
        call_id="call-1",
        transfer_id="t-1",
        attempt=1,
        destination=destination,
        room="room-1",
        caller_identity="caller",
        mode=mode,
        ring_timeout_s=15,
    )


async def no_ringing() -> None:
    return None


async def test_a_warm_transfer_dials_into_a_consult_room_then_moves_the_human_to_the_caller(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    await bridge_on_double.desk.place(place(whisper=WHISPER, context=CONTEXT))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "ringing", "answered", "briefed", "connected"]

    (create,) = livekit_double.recorded("CreateSIPParticipant")
    request = create.request
    consult = sink.events[2][1].consult_room
    assert consult.startswith("room-1-consult-")
    assert (request.sip_trunk_id, request.sip_call_to, request.room_name) == (
        "ST_main",
        "+14155550100",
        consult,
    )
    assert request.participant_identity.startswith("human-")
    assert request.wait_until_answered
    assert request.hide_phone_number
    assert request.ringing_timeout.seconds == 15
    assert request.headers["X-Switchboard-Call-Id"] == "call-1"
    assert request.headers["X-Switchboard-Transfer-Id"] == "t-1"
    assert request.headers["X-Switchboard-Intent"] == "billing"
    sent = " ".join([*request.headers.values(), *request.participant_attributes.values()])
    for personal in ("Jane", "refund", "j@example.com"):
        assert personal not in sent
    assert create.claims["iss"] == livekit_double.api_key
    assert create.claims["sip"]["call"] is True
    assert create.headers.get("X-Livekit-Request-Id")

    (move,) = livekit_double.requests("MoveParticipant")
    assert (move.room, move.identity, move.destination_room) == (
        consult,
        request.participant_identity,
        "room-1",
    )
    assert ("room-1", request.participant_identity) in livekit_double.participants
    await bridge_on_double.desk.drain(1.0)
    assert [r.room for r in livekit_double.requests("DeleteRoom")] == [consult]


@pytest.mark.parametrize(
    ("sip_code", "phrase", "reason"),
    [
        (486, "Busy Here", FailureReason.BUSY),
        (480, "Temporarily Unavailable", FailureReason.NO_ANSWER),
        (603, "Decline", FailureReason.DECLINED),
        (404, "Not Found", FailureReason.CARRIER_ERROR),
    ],
)
async def test_sip_failures_map_to_typed_reasons_with_their_status(
    livekit_double: Any, carrier: LiveKitCarrier, sip_code: int, phrase: str, reason: FailureReason
) -> None:
    livekit_double.script("+14155550100", answer=False, sip_code=sip_code, sip_phrase=phrase)
    with pytest.raises(DialFailed) as failed:
        await carrier.dial(plan(), no_ringing)
    failure = failed.value.failure
    assert (failure.reason, failure.sip_status, failure.sip_status_text) == (
        reason,
        sip_code,
        phrase,
    )
    assert "+1415" not in failure.detail


async def test_a_reason_phrase_that_could_carry_a_number_is_replaced_by_the_standard_one(
    livekit_double: Any, carrier: LiveKitCarrier
) -> None:
    livekit_double.script(
        "+14155550100", answer=False, sip_code=486, sip_phrase="Busy +14155550100"
    )
    with pytest.raises(DialFailed) as failed:
        await carrier.dial(plan(), no_ringing)
    assert failed.value.failure.sip_status_text == "Busy Here"


async def test_wrong_credentials_are_refused_by_the_server_and_nothing_is_dialled(
    livekit_double: Any,
) -> None:
    credentials = LiveKitCredentials(livekit_double.url, livekit_double.api_key, "x" * 48)
    driver = LiveKitCarrier(credentials, trunk_id="ST_main", status_poll_s=0.01)
    try:
        with pytest.raises(DialFailed) as failed:
            await driver.dial(plan(), no_ringing)
    finally:
        await driver.aclose()
    failure = failed.value.failure
    assert failure.reason is FailureReason.CARRIER_ERROR
    assert "credentials" in failure.detail
    assert ("CreateSIPParticipant", 401) in livekit_double.refused
    assert livekit_double.recorded("CreateSIPParticipant") == []


async def test_a_busy_human_fails_over_to_the_next_destination_through_livekit(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    livekit_double.script("+14155550100", answer=False, sip_code=486, sip_phrase="Busy Here")
    await bridge_on_double.desk.place(place(MAIN, BACKUP))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == [
        "dialing",
        "ringing",
        "failed",
        "dialing",
        "ringing",
        "answered",
        "briefed",
        "connected",
    ]
    busy = sink.events[2][1]
    assert isinstance(busy, TransferFailed)
    assert (busy.reason, busy.sip_status) == (FailureReason.BUSY, 486)
    calls_to = [r.sip_call_to for r in livekit_double.requests("CreateSIPParticipant")]
    assert calls_to == ["+14155550100", "+14155550101"]
    identities = {r.participant_identity for r in livekit_double.requests("CreateSIPParticipant")}
    assert len(identities) == 2  # Each attempt is its own participant.


async def test_a_caller_who_left_is_not_connected_and_no_other_human_is_dialled(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    await bridge_on_double.desk.place(place(MAIN, BACKUP))  # The caller never joined.
    await sink.wait_for_end("t-1")
    final = sink.events[-1][1]
    assert isinstance(final, TransferFailed)
    assert (final.reason, final.final) == (FailureReason.CALLER_HUNG_UP, True)
    assert len(livekit_double.requests("CreateSIPParticipant")) == 1
    assert livekit_double.requests("MoveParticipant") == []
    assert [r.room for r in livekit_double.requests("RemoveParticipant")] == [final_consult(sink)]


def final_consult(sink: Any) -> str:
    answered = next(p for _, p in sink.events if isinstance(p, TransferAnswered))
    assert answered.consult_room is not None
    return answered.consult_room


async def test_cancelling_a_ringing_transfer_hangs_up_the_human_leg(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    livekit_double.script("+14155550100", ring_s=10.0)
    await bridge_on_double.desk.place(place())
    await eventually(lambda: "ringing" in sink.kinds())
    await bridge_on_double.desk.cancel(CancelTransfer(call_id="call-1", transfer_id="t-1"))
    assert sink.kinds() == ["dialing", "ringing", "cancelled"]
    (create,) = livekit_double.requests("CreateSIPParticipant")
    removed = livekit_double.requests("RemoveParticipant")
    assert [(r.room, r.identity) for r in removed] == [
        (create.room_name, create.participant_identity)
    ]
    assert [r.room for r in livekit_double.requests("DeleteRoom")] == [create.room_name]


async def test_a_cold_transfer_refers_the_caller_with_room_admin_rights(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    await bridge_on_double.desk.place(place(mode=TransferMode.COLD, context=CONTEXT))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "answered", "connected"]
    (refer,) = livekit_double.recorded("TransferSIPParticipant")
    request = refer.request
    assert (request.room_name, request.participant_identity, request.transfer_to) == (
        "room-1",
        "caller",
        "tel:+14155550100",
    )
    assert request.ringing_timeout.seconds == 15
    assert request.headers["X-Switchboard-Transfer-Id"] == "t-1"
    assert refer.claims["video"]["roomAdmin"] is True
    assert refer.claims["video"]["room"] == "room-1"
    assert refer.claims["sip"]["call"] is True
    assert livekit_double.requests("CreateSIPParticipant") == []


async def test_a_cold_transfer_that_rings_out_is_no_answer(
    livekit_double: Any, carrier: LiveKitCarrier
) -> None:
    livekit_double.join("room-1", "caller")
    livekit_double.script(
        "tel:+14155550100",
        answer=False,
        transfer_reason="STR_RINGING_TIMEOUT",
        http_status=408,
        twirp_code="deadline_exceeded",
    )
    with pytest.raises(DialFailed) as failed:
        await carrier.dial(plan(mode=TransferMode.COLD), no_ringing)
    assert failed.value.failure.reason is FailureReason.NO_ANSWER


async def test_a_sip_uri_destination_sets_the_request_uri(
    livekit_double: Any, carrier: LiveKitCarrier
) -> None:
    desk = Destination(id="pbx-desk", address="sip:billing@pbx.example.com")
    answered = await carrier.dial(plan(desk), no_ringing)
    assert answered.consult_room is not None
    (request,) = livekit_double.requests("CreateSIPParticipant")
    assert request.sip_call_to == "billing"
    assert request.sip_request_uri.raw == "sip:billing@pbx.example.com"
    assert request.participant_identity == human_identity(plan(desk))


def test_handoff_headers_cannot_be_used_to_inject_sip_header_lines() -> None:
    hostile = DialPlan(
        call_id="call-1",
        transfer_id="t-1\r\nX-Evil: yes",
        attempt=1,
        destination=Destination(id="desk\nVia: evil", address="+14155550100"),
        room="room-1",
        caller_identity="caller",
        mode=TransferMode.WARM,
        ring_timeout_s=15,
        context=HandoffContext(intent="billing\r\nX-Evil: 1"),
    )
    headers = handoff_headers(hostile)
    assert all(k.startswith("X-Switchboard-") for k in headers)
    for value in headers.values():
        assert "\r" not in value
        assert "\n" not in value
        assert "Evil" not in value


async def test_with_livekit_credentials_the_service_dials_for_real_and_has_no_simulator(
    livekit_double: Any, bridge: Any, events: Any, nc: Any
) -> None:
    livekit_double.join("room-1", "caller")
    values = {f: getattr(settings(livekit_double), f) for f in SipBridgeSettings.__struct_fields__}
    values.pop("nats_url")
    await bridge(**values)
    info = json.loads((await nc.request("$SRV.INFO.sip-bridge", b"", timeout=2)).data)
    assert sorted(e["subject"] for e in info["endpoints"]) == [TRANSFER_CANCEL, TRANSFER_PLACE]
    reply: TransferPlaceReply = await request(nc, TRANSFER_PLACE, place(), TransferPlaceReply, 2)
    assert isinstance(reply, TransferAccepted)
    received = await events.until_end("call-1")
    assert [e.type.split(".")[-2] for e, _, _ in received] == [
        "dialing",
        "ringing",
        "answered",
        "briefed",
        "connected",
    ]
    assert len(livekit_double.requests("CreateSIPParticipant")) == 1
