"""The real LiveKit driver against a LiveKit server double speaking Twirp on 127.0.0.1:
dialling into the voice worker's consult room, the human's decision, the move to the
caller, hanging up legs, and deleting rooms."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bridge_testkit import Decision, Humans

from switchboard.contracts import (
    CancelTransfer,
    DeclineReason,
    Destination,
    FailureReason,
    HandoffContext,
    HumanDecision,
    LegState,
    PlaceTransfer,
    TransferAccepted,
    TransferAnswered,
    TransferFailed,
    TransferMode,
    TransferPlaceReply,
)
from switchboard.contracts.subjects import (
    TRANSFER_CANCEL,
    TRANSFER_DECIDE,
    TRANSFER_LEGS,
    TRANSFER_PLACE,
)
from switchboard.runtime.bus import request
from switchboard.sip_bridge.assembly import Bridge, build_bridge
from switchboard.sip_bridge.drivers.base import DialFailed, DialPlan
from switchboard.sip_bridge.drivers.livekit import LiveKitCarrier
from switchboard.sip_bridge.drivers.sip_headers import handoff_headers
from switchboard.sip_bridge.settings import LiveKitCredentials, SipBridgeSettings
from switchboard.testing import eventually

MAIN = Destination(id="billing-desk", address="+14155550100", label="Billing")
BACKUP = Destination(id="billing-backup", address="+14155550101")
SUMMARY = "Jane Roe, refund for order 7731"
CONTEXT = HandoffContext(summary=SUMMARY, intent="billing", collected={"email": "j@example.com"})
CONSULT = "room-1-consult-t1"
"""The consult room the voice worker opened (its briefing session waits there)."""


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
    sink.humans = Humans(bridge.desk)
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
    values: dict[str, Any] = {"consult_room": CONSULT, **kw}
    return PlaceTransfer(
        call_id="call-1",
        room="room-1",
        caller_identity="caller",
        destinations=list(destinations or (MAIN,)),
        transfer_id="t-1",
        ring_timeout_s=15,
        **values,
    )


def humans_decide(sink: Any, *decisions: Decision) -> None:
    assert sink.humans is not None
    sink.humans.decisions.extend(decisions)


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
        consult_room=CONSULT,
    )


async def no_ringing() -> None:
    return None


async def test_a_warm_transfer_dials_into_the_consult_room_then_moves_the_accepting_human(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    await bridge_on_double.desk.place(place(context=CONTEXT))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "ringing", "answered", "briefed", "connected"]

    (create,) = livekit_double.recorded("CreateSIPParticipant")
    request = create.request
    answered = sink.events[2][1]
    assert (answered.consult_room, answered.human_identity) == (
        CONSULT,
        request.participant_identity,
    )
    assert (request.sip_trunk_id, request.sip_call_to, request.room_name) == (
        "ST_main",
        "+14155550100",
        CONSULT,
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
        CONSULT,
        request.participant_identity,
        "room-1",
    )
    assert livekit_double.in_room("room-1") == {"caller", request.participant_identity}
    # The transfer is over: its consult room goes; the caller's room stays for the call.
    await eventually(lambda: [r.room for r in livekit_double.requests("DeleteRoom")] == [CONSULT])
    [leg] = bridge_on_double.desk.legs("call-1").legs
    assert leg.state is LegState.BRIDGED

    # The caller hangs up: the bridge deletes the room, which hangs up the human too.
    livekit_double.leave("room-1", "caller")
    await eventually(
        lambda: [r.room for r in livekit_double.requests("DeleteRoom")] == [CONSULT, "room-1"]
    )
    assert livekit_double.in_room("room-1") == set()
    await eventually(lambda: bridge_on_double.desk.legs("call-1").legs[0].state is LegState.ENDED)


async def test_a_human_who_hangs_up_after_the_move_ends_the_call_for_the_caller_too(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    await bridge_on_double.desk.place(place())
    await sink.wait_for_end("t-1")
    (create,) = livekit_double.requests("CreateSIPParticipant")
    livekit_double.leave("room-1", create.participant_identity)
    await eventually(lambda: "room-1" in [r.room for r in livekit_double.requests("DeleteRoom")])
    assert livekit_double.in_room("room-1") == set()


async def test_a_declining_human_is_hung_up_and_the_next_is_dialled_into_the_same_room(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    humans_decide(sink, (HumanDecision.DECLINE, DeclineReason.BUSY))
    await bridge_on_double.desk.place(place(MAIN, BACKUP))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == [
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
    first, second = livekit_double.requests("CreateSIPParticipant")
    assert (first.room_name, second.room_name) == (CONSULT, CONSULT)
    removed = [(r.room, r.identity) for r in livekit_double.requests("RemoveParticipant")]
    assert removed == [(CONSULT, first.participant_identity)]
    (move,) = livekit_double.requests("MoveParticipant")
    assert move.identity == second.participant_identity
    assert first.participant_identity not in livekit_double.in_room(CONSULT)


async def test_a_human_who_hangs_up_during_the_briefing_is_seen_by_the_bridge_as_a_decline(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    humans_decide(sink, None)  # The briefing session never reports: only the carrier sees it.
    await bridge_on_double.desk.place(place())
    await eventually(lambda: "answered" in sink.kinds())
    (create,) = livekit_double.requests("CreateSIPParticipant")
    livekit_double.leave(CONSULT, create.participant_identity)
    await sink.wait_for_end("t-1")
    failed = next(p for _, p in sink.events if isinstance(p, TransferFailed))
    assert (failed.reason, failed.detail) == (
        FailureReason.HUMAN_DECLINED,
        "the human hung up during the briefing",
    )
    assert livekit_double.requests("MoveParticipant") == []


async def test_cancelling_during_the_briefing_hangs_up_the_human_and_deletes_the_room(
    livekit_double: Any, bridge_on_double: Bridge, sink: Any
) -> None:
    livekit_double.join("room-1", "caller")
    humans_decide(sink, None)
    await bridge_on_double.desk.place(place(MAIN, BACKUP))
    await eventually(lambda: "answered" in sink.kinds())
    await bridge_on_double.desk.cancel(
        CancelTransfer(call_id="call-1", transfer_id="t-1", reason="caller_hung_up")
    )
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "ringing", "answered", "cancelled"]
    (create,) = livekit_double.requests("CreateSIPParticipant")
    removed = [(r.room, r.identity) for r in livekit_double.requests("RemoveParticipant")]
    assert removed == [(CONSULT, create.participant_identity)]
    await eventually(lambda: [r.room for r in livekit_double.requests("DeleteRoom")] == [CONSULT])
    assert livekit_double.in_room(CONSULT) == set()
    assert livekit_double.in_room("room-1") == {"caller"}  # The caller's call goes on.


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
    # The leg is hung up before the final event; the consult room goes after it, as the
    # transfer finishes (the desk's ``_finish``), so the event alone does not prove it.
    await eventually(lambda: [r.room for r in livekit_double.requests("DeleteRoom")] == [CONSULT])


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
    assert request.participant_identity == plan(desk).human_identity


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
        consult_room=CONSULT,
        context=HandoffContext(intent="billing\r\nX-Evil: 1"),
    )
    headers = handoff_headers(hostile)
    assert all(k.startswith("X-Switchboard-") for k in headers)
    for value in headers.values():
        assert "\r" not in value
        assert "\n" not in value
        assert "Evil" not in value


async def test_with_livekit_credentials_the_service_dials_for_real_and_has_no_simulator(
    livekit_double: Any, bridge: Any, events: Any, nc: Any, humans: Any
) -> None:
    livekit_double.join("room-1", "caller")
    values = {f: getattr(settings(livekit_double), f) for f in SipBridgeSettings.__struct_fields__}
    values.pop("nats_url")
    await bridge(**values)
    info = json.loads((await nc.request("$SRV.INFO.sip-bridge", b"", timeout=2)).data)
    assert sorted(e["subject"] for e in info["endpoints"]) == [
        TRANSFER_CANCEL,
        TRANSFER_DECIDE,
        TRANSFER_LEGS,
        TRANSFER_PLACE,
    ]
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
