"""The transfer desk with the simulated carrier and an in-memory sink (no broker)."""

from __future__ import annotations

import asyncio
import logging
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
    TransferCancelled,
    TransferFailed,
    TransferMode,
    TransferRejected,
)
from switchboard.contracts.simulation import SimOutcome
from switchboard.sip_bridge.assembly import Bridge, build_bridge
from switchboard.sip_bridge.desk import (
    DeskClosed,
    TransferDesk,
    TransferFinished,
    TransferIdConflict,
    UnknownTransfer,
)
from switchboard.sip_bridge.drivers.base import Answered, DialPlan, OnRinging
from switchboard.sip_bridge.settings import SipBridgeSettings
from switchboard.testing import eventually

MAIN = Destination(id="billing-desk", address="+14155550100", label="Billing")
BACKUP = Destination(id="billing-backup", address="+14155550101")
SPARE = Destination(id="billing-spare", address="sip:spare@pbx.example.com")
WHISPER = "Caller Jane Roe wants a refund for order 7731"


def make_bridge(sink: Any, **overrides: Any) -> Bridge:
    values: dict[str, Any] = {
        "transfer_cps": 100.0,
        "transfer_burst": 100,
        "sim_ring_s": 0.01,
        "sim_brief_s": 0.0,
    }
    values.update(overrides)
    return build_bridge(SipBridgeSettings(**values), sink, environ={})


def place(
    *destinations: Destination, call_id: str = "call-1", transfer_id: str = "t-1", **kw: Any
) -> PlaceTransfer:
    return PlaceTransfer(
        call_id=call_id,
        room="room-1",
        caller_identity="caller",
        destinations=list(destinations or (MAIN,)),
        transfer_id=transfer_id,
        **kw,
    )


def script(
    bridge: Bridge, *outcomes: SimOutcome, ring_s: float = 0.01, call_id: str = "call-1"
) -> None:
    assert bridge.scripts is not None
    bridge.scripts.set(call_id, outcomes, ring_s)


async def test_an_answered_warm_transfer_emits_every_state_in_order(sink: Any) -> None:
    bridge = make_bridge(sink)
    reply = await bridge.desk.place(place(whisper=WHISPER))
    assert reply == TransferAccepted(call_id="call-1", transfer_id="t-1")
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "ringing", "answered", "briefed", "connected"]
    assert [event_id for event_id, _ in sink.events] == [
        "t-1:dialing:1",
        "t-1:ringing:1",
        "t-1:answered:1",
        "t-1:briefed:1",
        "t-1:connected:1",
    ]
    answered = sink.events[2][1]
    assert isinstance(answered, TransferAnswered)
    assert answered.consult_room is not None
    assert answered.consult_room.startswith("room-1-consult-")
    await bridge.desk.drain(grace_s=1.0)  # Waits for the transfer's own bookkeeping.
    assert bridge.desk.in_progress == 0
    assert bridge.admission.cap.in_use == 0


async def test_a_cold_transfer_skips_the_briefing(sink: Any) -> None:
    bridge = make_bridge(sink)
    await bridge.desk.place(place(mode=TransferMode.COLD))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "ringing", "answered", "connected"]


async def test_busy_then_answer_fails_over_to_the_second_destination(sink: Any) -> None:
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.BUSY, SimOutcome.ANSWER)
    await bridge.desk.place(place(MAIN, BACKUP))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == [
        "dialing",
        "failed",
        "dialing",
        "ringing",
        "answered",
        "briefed",
        "connected",
    ]
    failed = sink.events[1][1]
    assert isinstance(failed, TransferFailed)
    assert (failed.reason, failed.sip_status, failed.sip_status_text, failed.final) == (
        FailureReason.BUSY,
        486,
        "Busy Here",
        False,
    )
    assert sink.events[-1][1].destination_id == "billing-backup"


@pytest.mark.parametrize(
    ("outcome", "reason", "sip_status"),
    [
        (SimOutcome.BUSY, FailureReason.BUSY, 486),
        (SimOutcome.NO_ANSWER, FailureReason.NO_ANSWER, 480),
        (SimOutcome.DECLINE, FailureReason.DECLINED, 603),
        (SimOutcome.ERROR, FailureReason.CARRIER_ERROR, 503),
        (SimOutcome.VOICEMAIL, FailureReason.VOICEMAIL, None),
    ],
)
async def test_every_simulated_outcome_fails_with_its_typed_reason_and_sip_status(
    sink: Any, outcome: SimOutcome, reason: FailureReason, sip_status: int | None
) -> None:
    bridge = make_bridge(sink)
    script(bridge, outcome)
    await bridge.desk.place(place())
    await sink.wait_for_end("t-1")
    failures = [p for _, p in sink.events if isinstance(p, TransferFailed)]
    attempt, final = failures
    assert (attempt.reason, attempt.sip_status, attempt.final) == (reason, sip_status, False)
    assert (final.reason, final.final) == (FailureReason.ALL_DESTINATIONS_FAILED, True)
    if outcome is SimOutcome.VOICEMAIL:  # A machine answers, then is recognised.
        assert sink.kinds()[:3] == ["dialing", "ringing", "answered"]


async def test_when_every_destination_fails_the_last_event_is_a_final_failure(
    sink: Any,
) -> None:
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.BUSY, SimOutcome.DECLINE, SimOutcome.NO_ANSWER)
    await bridge.desk.place(place(MAIN, BACKUP, SPARE))
    await sink.wait_for_end("t-1")
    failures = [p for _, p in sink.events if isinstance(p, TransferFailed)]
    assert [f.reason for f in failures] == [
        FailureReason.BUSY,
        FailureReason.DECLINED,
        FailureReason.NO_ANSWER,
        FailureReason.ALL_DESTINATIONS_FAILED,
    ]
    assert [f.final for f in failures] == [False, False, False, True]
    assert sink.kinds()[-1] == "failed"
    assert sink.kinds().count("dialing") == 3


async def test_the_ring_timeout_ends_an_unanswered_attempt_without_a_sip_status(
    sink: Any,
) -> None:
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.ANSWER, ring_s=5.0)
    started = asyncio.get_running_loop().time()
    await bridge.desk.place(place(ring_timeout_s=0.1))
    await sink.wait_for_end("t-1")
    assert asyncio.get_running_loop().time() - started < 2.0
    attempt = next(p for _, p in sink.events if isinstance(p, TransferFailed))
    assert (attempt.reason, attempt.sip_status, attempt.detail) == (
        FailureReason.NO_ANSWER,
        None,
        "ring timeout",
    )


async def test_the_bridge_caps_a_requested_ring_timeout(sink: Any) -> None:
    bridge = make_bridge(sink, transfer_max_ring_s=0.1)
    script(bridge, SimOutcome.ANSWER, ring_s=5.0)
    await bridge.desk.place(place(ring_timeout_s=120))
    await sink.wait_for_end("t-1", timeout=2.0)
    assert FailureReason.NO_ANSWER in [
        p.reason for _, p in sink.events if isinstance(p, TransferFailed)
    ]


async def test_cancelling_while_it_rings_hangs_up_and_emits_cancelled(sink: Any) -> None:
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.ANSWER, ring_s=5.0)
    await bridge.desk.place(place(MAIN, BACKUP))
    await eventually(lambda: "ringing" in sink.kinds())
    reply = await bridge.desk.cancel(
        CancelTransfer(call_id="call-1", transfer_id="t-1", reason="caller hung up")
    )
    assert reply == TransferCancelled(call_id="call-1", transfer_id="t-1", reason="caller hung up")
    again = await bridge.desk.cancel(CancelTransfer(call_id="call-1", transfer_id="t-1"))
    assert again.reason == "caller hung up"
    await bridge.desk.drain(grace_s=1.0)
    assert sink.kinds() == ["dialing", "ringing", "cancelled"]  # No failover after a cancel.
    assert bridge.admission.cap.in_use == 0


async def test_cancelling_an_unknown_or_finished_transfer_is_refused(sink: Any) -> None:
    bridge = make_bridge(sink)
    with pytest.raises(UnknownTransfer):
        await bridge.desk.cancel(CancelTransfer(call_id="call-1", transfer_id="nope"))
    await bridge.desk.place(place())
    await sink.wait_for_end("t-1")
    with pytest.raises(TransferFinished, match="connected"):
        await bridge.desk.cancel(CancelTransfer(call_id="call-1", transfer_id="t-1"))
    with pytest.raises(UnknownTransfer):  # Another call cannot cancel it by guessing the id.
        await bridge.desk.cancel(CancelTransfer(call_id="call-2", transfer_id="t-1"))


async def test_a_retried_place_returns_the_first_reply_and_dials_once(sink: Any) -> None:
    bridge = make_bridge(sink)
    first = await bridge.desk.place(place())
    second = await bridge.desk.place(place())
    assert first == second
    await sink.wait_for_end("t-1")
    third = await bridge.desk.place(place())
    assert third == first
    await bridge.desk.drain(grace_s=1.0)
    assert sink.kinds().count("dialing") == 1


async def test_a_transfer_id_of_another_call_is_a_conflict(sink: Any) -> None:
    bridge = make_bridge(sink)
    await bridge.desk.place(place())
    with pytest.raises(TransferIdConflict):
        await bridge.desk.place(place(call_id="call-2"))


async def test_one_call_gets_one_transfer_at_a_time(sink: Any) -> None:
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.ANSWER, ring_s=0.3)
    await bridge.desk.place(place())
    second = await bridge.desk.place(place(transfer_id="t-2"))
    assert isinstance(second, TransferRejected)
    assert second.reason is FailureReason.REJECTED_BY_POLICY
    await sink.wait_for_end("t-1")


async def test_a_refused_transfer_dials_nothing_and_reports_a_final_failure(sink: Any) -> None:
    bridge = make_bridge(sink)
    reply = await bridge.desk.place(place(Destination(id="premium", address="+19005550100")))
    assert isinstance(reply, TransferRejected)
    assert reply.reason is FailureReason.REJECTED_BY_POLICY
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["failed", "failed"]
    skipped, final = (p for _, p in sink.events)
    assert (skipped.destination_id, skipped.final) == ("premium", False)
    assert (final.reason, final.final) == (FailureReason.REJECTED_BY_POLICY, True)


async def test_skipped_destinations_are_reported_and_the_rest_dialled(sink: Any) -> None:
    bridge = make_bridge(sink)
    reply = await bridge.desk.place(place(Destination(id="abroad", address="+442071838750"), MAIN))
    assert isinstance(reply, TransferAccepted)
    assert reply.skipped_destination_ids == ["abroad"]
    await sink.wait_for_end("t-1")
    assert sink.kinds()[:2] == ["failed", "dialing"]
    assert sink.events[1][1].destination_id == "billing-desk"


async def test_past_the_calls_per_second_cap_a_transfer_is_rate_limited(sink: Any) -> None:
    bridge = make_bridge(sink, transfer_cps=0.1, transfer_burst=1)
    assert isinstance(await bridge.desk.place(place()), TransferAccepted)
    refused = await bridge.desk.place(place(call_id="call-2", transfer_id="t-2"))
    assert isinstance(refused, TransferRejected)
    assert refused.reason is FailureReason.RATE_LIMITED
    await sink.wait_for_end("t-2")
    assert "dialing" not in sink.kinds("t-2")


async def test_past_the_concurrency_cap_a_transfer_is_rate_limited(sink: Any) -> None:
    bridge = make_bridge(sink, transfer_max_concurrent=1)
    script(bridge, SimOutcome.ANSWER, ring_s=0.3)
    await bridge.desk.place(place())
    refused = await bridge.desk.place(place(call_id="call-2", transfer_id="t-2"))
    assert isinstance(refused, TransferRejected)
    assert refused.reason is FailureReason.RATE_LIMITED
    await sink.wait_for_end("t-1")
    await eventually(lambda: bridge.admission.cap.in_use == 0)
    assert isinstance(
        await bridge.desk.place(place(call_id="call-3", transfer_id="t-3")), TransferAccepted
    )


async def test_shutdown_lets_short_transfers_finish(sink: Any) -> None:
    bridge = make_bridge(sink)
    await bridge.desk.place(place())
    await bridge.desk.drain(grace_s=2.0)
    assert sink.kinds()[-1] == "connected"


async def test_shutdown_fails_transfers_that_outlast_the_grace_period(sink: Any) -> None:
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.ANSWER, ring_s=5.0)
    await bridge.desk.place(place())
    await eventually(lambda: "ringing" in sink.kinds())
    await bridge.desk.drain(grace_s=0.05)
    final = sink.events[-1][1]
    assert isinstance(final, TransferFailed)
    assert (final.reason, final.final, final.detail) == (
        FailureReason.CARRIER_ERROR,
        True,
        "the bridge shut down",
    )
    assert bridge.desk.in_progress == 0
    with pytest.raises(DeskClosed):
        await bridge.desk.place(place(call_id="call-9", transfer_id="t-9"))


async def test_events_survive_a_bus_that_drops_the_first_publishes(sink: Any) -> None:
    bridge = make_bridge(sink)
    sink.fail_next = 2
    await bridge.desk.place(place())
    await sink.wait_for_end("t-1", timeout=5.0)
    assert sink.kinds() == ["dialing", "ringing", "answered", "briefed", "connected"]


class ExplodingCarrier:
    """A driver with a bug on its first dial."""

    name = "exploding"

    def __init__(self) -> None:
        self.dials = 0

    async def dial(self, plan: DialPlan, on_ringing: OnRinging) -> Answered:
        self.dials += 1
        if self.dials == 1:
            raise KeyError("bug")
        return Answered(consult_room=plan.consult_room)

    async def brief(self, plan: DialPlan, answered: Answered) -> None:
        return None

    async def connect(self, plan: DialPlan, answered: Answered) -> None:
        return None

    async def hang_up(self, plan: DialPlan) -> None:
        return None

    async def finish(self, plan: DialPlan) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_a_driver_bug_fails_the_attempt_as_a_carrier_error_and_fails_over(
    sink: Any,
) -> None:
    bridge = make_bridge(sink)
    desk = TransferDesk(ExplodingCarrier(), bridge.admission, sink)
    await desk.place(place(MAIN, BACKUP))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "failed", "dialing", "answered", "briefed", "connected"]
    assert sink.events[1][1].reason is FailureReason.CARRIER_ERROR


async def test_no_log_record_carries_a_number_or_the_whisper(
    sink: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.BUSY, SimOutcome.ANSWER)
    context = HandoffContext(summary=WHISPER, collected={"email": "jane@example.com"})
    await bridge.desk.place(place(MAIN, BACKUP, whisper=WHISPER, context=context))
    await sink.wait_for_end("t-1")
    await bridge.desk.place(
        place(Destination(id="premium", address="+19005550100"), call_id="c2", transfer_id="t-2")
    )
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(str(v) for v in record.__dict__.values())
        for secret in ("+1415555", "+1900555", "Jane", "jane@example.com", "refund"):
            assert secret not in text, record.getMessage()
