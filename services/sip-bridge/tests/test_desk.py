"""The transfer desk with the simulated carrier and an in-memory sink (no broker); the
humans who answer decide through ``Humans`` as the voice worker's briefing session would."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from bridge_testkit import TEST_ALLOW, Decision, Humans, MemoryJournal, UnreachableJournal

from switchboard.contracts import (
    CancelTransfer,
    DeclineReason,
    Destination,
    FailureReason,
    HandoffContext,
    HumanDecision,
    LegState,
    PlaceTransfer,
    ReportHumanDecision,
    TransferAccepted,
    TransferAnswered,
    TransferBriefed,
    TransferCancelled,
    TransferFailed,
    TransferMode,
    TransferQueued,
    TransferRejected,
)
from switchboard.contracts.simulation import SimOutcome
from switchboard.sip_bridge.assembly import Bridge, build_bridge
from switchboard.sip_bridge.desk import (
    DecisionOutOfTurn,
    DeskClosed,
    TransferDesk,
    TransferFinished,
    TransferIdConflict,
    UnknownTransfer,
)
from switchboard.sip_bridge.drivers.base import Answered, DialPlan, OnRinging
from switchboard.sip_bridge.drivers.simulated import SimulatedCarrier
from switchboard.sip_bridge.settings import SipBridgeSettings
from switchboard.testing import eventually

MAIN = Destination(id="billing-desk", address="+14155550100", label="Billing")
BACKUP = Destination(id="billing-backup", address="+14155550101")
SPARE = Destination(id="billing-spare", address="sip:spare@pbx.example.com")
SUMMARY = "Caller Jane Roe wants a refund for order 7731"


def make_bridge(sink: Any, *decisions: Decision, **overrides: Any) -> Bridge:
    """A bridge on the simulated carrier whose humans decide ``decisions`` in answer order
    (then accept)."""
    values: dict[str, Any] = {
        "transfer_cps": 100.0,
        "transfer_allow": TEST_ALLOW,
        "transfer_burst": 100,
        "sim_ring_s": 0.01,
    }
    values.update(overrides)
    journal = values.pop("journal", None)
    owner = values.pop("owner", "")
    bridge = build_bridge(
        SipBridgeSettings(**values), sink, environ={}, journal=journal, owner=owner
    )
    sink.humans = Humans(bridge.desk, decisions)
    return bridge


def decide(
    bridge: Bridge,
    transfer_id: str,
    decision: HumanDecision,
    *,
    call_id: str = "call-1",
    attempt: int = 1,
    why: DeclineReason | None = None,
) -> None:
    bridge.desk.decide(
        ReportHumanDecision(
            call_id=call_id,
            transfer_id=transfer_id,
            attempt=attempt,
            decision=decision,
            decline_reason=why,
        )
    )


def open_legs(bridge: Bridge) -> set[tuple[str, int]]:
    assert isinstance(bridge.driver, SimulatedCarrier)
    return bridge.driver.open_legs


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
    reply = await bridge.desk.place(place())
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
    assert bridge.admission.slots.cap.in_use == 0
    assert open_legs(bridge) == set()


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
    assert "answered" not in sink.kinds()


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
    assert bridge.admission.slots.cap.in_use == 0
    assert open_legs(bridge) == set()


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


async def test_past_the_calls_per_second_cap_a_transfer_waits_in_line_then_dials(
    sink: Any,
) -> None:
    bridge = make_bridge(sink, transfer_cps=5.0, transfer_burst=1)
    assert isinstance(await bridge.desk.place(place()), TransferAccepted)
    second = await bridge.desk.place(place(call_id="call-2", transfer_id="t-2"))
    assert isinstance(second, TransferAccepted)  # Not refused: it waits its turn.
    await sink.wait_for_end("t-2")
    assert sink.kinds("t-2") == [
        "queued",
        "dialing",
        "ringing",
        "answered",
        "briefed",
        "connected",
    ]
    queued = sink.events_of("t-2", TransferQueued)[0]
    assert queued.position == 1
    assert queued.estimated_wait_s is not None
    assert 0 < queued.estimated_wait_s <= 0.2  # One token at 5 per second.
    assert queued.max_wait_s == 120.0


async def test_past_the_concurrency_cap_a_transfer_waits_for_one_to_end(sink: Any) -> None:
    bridge = make_bridge(sink, None, transfer_max_concurrent=1)
    await bridge.desk.place(place())
    await eventually(lambda: "answered" in sink.kinds("t-1"))
    second = await bridge.desk.place(place(call_id="call-2", transfer_id="t-2"))
    assert isinstance(second, TransferAccepted)
    await eventually(lambda: sink.kinds("t-2") == ["queued"])
    queued = sink.events_of("t-2", TransferQueued)[0]
    # Its wait depends on how long the first call's briefing takes: no estimate.
    assert (queued.position, queued.estimated_wait_s) == (1, None)
    decide(bridge, "t-1", HumanDecision.ACCEPT)
    await sink.wait_for_end("t-2")
    assert sink.kinds("t-2")[-1] == "connected"
    await eventually(lambda: bridge.admission.slots.cap.in_use == 0)


async def test_the_line_serves_first_come_first_served(sink: Any) -> None:
    bridge = make_bridge(sink, transfer_cps=20.0, transfer_burst=1)
    ids = [f"t-{n}" for n in range(1, 6)]
    for n, transfer_id in enumerate(ids, start=1):
        await bridge.desk.place(place(call_id=f"call-{n}", transfer_id=transfer_id))
    for transfer_id in ids:
        await sink.wait_for_end(transfer_id)
    positions = [sink.events_of(t, TransferQueued)[0].position for t in ids[1:]]
    assert positions == [1, 2, 3, 4]
    dialled = [p.transfer_id for _, p in sink.events if type(p).__name__ == "TransferDialing"]
    assert dialled == ids


async def test_a_transfer_that_waits_past_the_maximum_fails_with_queue_timeout(
    sink: Any,
) -> None:
    bridge = make_bridge(sink, transfer_cps=0.1, transfer_burst=1, transfer_queue_max_wait_s=0.1)
    await bridge.desk.place(place())
    await bridge.desk.place(place(call_id="call-2", transfer_id="t-2"))
    await sink.wait_for_end("t-2")
    assert sink.kinds("t-2") == ["queued", "failed"]
    final = sink.events_of("t-2", TransferFailed)[0]
    assert (final.reason, final.final, final.destination_id) == (
        FailureReason.QUEUE_TIMEOUT,
        True,
        None,
    )
    assert bridge.admission.slots.waiting == 0


async def test_a_full_line_refuses_a_newcomer_as_rate_limited(sink: Any) -> None:
    bridge = make_bridge(sink, transfer_cps=0.1, transfer_burst=1, transfer_max_queued=1)
    await bridge.desk.place(place())
    await bridge.desk.place(place(call_id="call-2", transfer_id="t-2"))
    refused = await bridge.desk.place(place(call_id="call-3", transfer_id="t-3"))
    assert isinstance(refused, TransferRejected)
    assert refused.reason is FailureReason.RATE_LIMITED
    await sink.wait_for_end("t-3")
    assert "dialing" not in sink.kinds("t-3")


async def test_cancelling_a_waiting_transfer_leaves_the_line_without_dialling(sink: Any) -> None:
    bridge = make_bridge(sink, transfer_cps=0.1, transfer_burst=1)
    await bridge.desk.place(place())
    await bridge.desk.place(place(call_id="call-2", transfer_id="t-2"))
    await eventually(lambda: sink.kinds("t-2") == ["queued"])
    await bridge.desk.cancel(
        CancelTransfer(call_id="call-2", transfer_id="t-2", reason="caller_hung_up")
    )
    await sink.wait_for_end("t-2")
    assert sink.kinds("t-2") == ["queued", "cancelled"]
    assert bridge.admission.slots.waiting == 0
    assert bridge.desk.legs("call-2").legs == []


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

    async def human_left(self, plan: DialPlan) -> None:
        await asyncio.Event().wait()

    async def connect(self, plan: DialPlan, answered: Answered) -> None:
        return None

    async def supervise(self, plan: DialPlan) -> None:
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
    sink.humans = Humans(desk)
    await desk.place(place(MAIN, BACKUP))
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "failed", "dialing", "answered", "briefed", "connected"]
    assert sink.events[1][1].reason is FailureReason.CARRIER_ERROR


async def test_no_log_record_carries_a_number_or_what_the_caller_said(
    sink: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bridge = make_bridge(sink)
    script(bridge, SimOutcome.BUSY, SimOutcome.ANSWER)
    context = HandoffContext(summary=SUMMARY, collected={"email": "jane@example.com"})
    await bridge.desk.place(place(MAIN, BACKUP, context=context))
    await sink.wait_for_end("t-1")
    await bridge.desk.place(
        place(Destination(id="premium", address="+19005550100"), call_id="c2", transfer_id="t-2")
    )
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(str(v) for v in record.__dict__.values())
        for secret in ("+1415555", "+1900555", "Jane", "jane@example.com", "refund"):
            assert secret not in text, record.getMessage()


# --------------------------------------------------------------------------- the human decides


async def test_an_answered_human_is_briefed_only_when_they_accept(sink: Any) -> None:
    bridge = make_bridge(sink, None)  # The human hears the briefing and does not decide yet.
    await bridge.desk.place(place(consult_room="room-1-consult-abc"))
    await eventually(lambda: "answered" in sink.kinds())
    answered = sink.events_of("t-1", TransferAnswered)[0]
    assert answered.consult_room == "room-1-consult-abc"  # The voice worker's room.
    assert answered.human_identity is not None
    assert answered.human_identity.startswith("human-")
    assert open_legs(bridge) == {("t-1", 1)}
    # A decision for another attempt is out of turn and changes nothing.
    with pytest.raises(DecisionOutOfTurn, match="Attempt 2"):
        decide(bridge, "t-1", HumanDecision.ACCEPT, attempt=2)
    assert bridge.desk.legs("call-1").in_progress == ["t-1"]
    decide(bridge, "t-1", HumanDecision.ACCEPT)
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "ringing", "answered", "briefed", "connected"]
    briefed = sink.events_of("t-1", TransferBriefed)[0]
    assert (briefed.destination_id, briefed.attempt) == ("billing-desk", 1)
    with pytest.raises(TransferFinished):
        decide(bridge, "t-1", HumanDecision.ACCEPT)


@pytest.mark.parametrize(
    ("decision", "reason", "detail"),
    [
        (
            (HumanDecision.DECLINE, DeclineReason.BUSY),
            FailureReason.HUMAN_DECLINED,
            "declined: busy",
        ),
        (HumanDecision.VOICEMAIL, FailureReason.VOICEMAIL, "an answering machine picked up"),
        (
            HumanDecision.HUNG_UP,
            FailureReason.HUMAN_DECLINED,
            "the human hung up during the briefing",
        ),
    ],
)
async def test_a_human_who_does_not_accept_fails_the_attempt_and_the_next_is_dialled(
    sink: Any, decision: Decision, reason: FailureReason, detail: str
) -> None:
    bridge = make_bridge(sink, decision)
    await bridge.desk.place(place(MAIN, BACKUP))
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
    failed = sink.events_of("t-1", TransferFailed)[0]
    assert (failed.reason, failed.detail, failed.final, failed.destination_id) == (
        reason,
        detail,
        False,
        "billing-desk",
    )
    first, second = (p for _, p in sink.events if isinstance(p, TransferAnswered))
    assert first.consult_room == second.consult_room  # One consult room per transfer.
    assert first.human_identity != second.human_identity
    legs = bridge.desk.legs("call-1")
    assert [(leg.attempt, leg.state, leg.ended_by) for leg in legs.legs] == [
        (1, LegState.ENDED, "hung up by the bridge"),
        (2, LegState.ENDED, "call ended"),
    ]
    assert open_legs(bridge) == set()


async def test_the_last_human_declining_fails_the_transfer_for_good(sink: Any) -> None:
    bridge = make_bridge(sink, HumanDecision.VOICEMAIL, HumanDecision.DECLINE)
    await bridge.desk.place(place(MAIN, BACKUP))
    await sink.wait_for_end("t-1")
    failures = sink.events_of("t-1", TransferFailed)
    assert [(f.reason, f.final) for f in failures] == [
        (FailureReason.VOICEMAIL, False),
        (FailureReason.HUMAN_DECLINED, False),
        (FailureReason.ALL_DESTINATIONS_FAILED, True),
    ]
    assert "briefed" not in sink.kinds()
    assert open_legs(bridge) == set()


class HangingUpCarrier(SimulatedCarrier):
    """The human hangs up as soon as they answer, and only the carrier sees it."""

    async def human_left(self, plan: DialPlan) -> None:
        return None


async def test_the_carrier_seeing_the_human_hang_up_is_a_decline(sink: Any) -> None:
    bridge = make_bridge(sink, None)
    assert bridge.scripts is not None
    desk = TransferDesk(HangingUpCarrier(bridge.scripts), bridge.admission, sink)
    await desk.place(place())
    await sink.wait_for_end("t-1")
    failed = sink.events_of("t-1", TransferFailed)[0]
    assert (failed.reason, failed.detail) == (
        FailureReason.HUMAN_DECLINED,
        "the human hung up during the briefing",
    )


async def test_a_human_who_never_decides_fails_the_attempt_after_the_briefing_time(
    sink: Any,
) -> None:
    bridge = make_bridge(sink, None, transfer_briefing_timeout_s=0.1)
    await bridge.desk.place(place())
    await sink.wait_for_end("t-1")
    failed = sink.events_of("t-1", TransferFailed)[0]
    assert (failed.reason, failed.detail) == (
        FailureReason.HUMAN_DECLINED,
        "no decision within the briefing time",
    )
    assert open_legs(bridge) == set()


async def test_cancelling_during_the_briefing_hangs_up_the_human(sink: Any) -> None:
    bridge = make_bridge(sink, None)
    await bridge.desk.place(place(MAIN, BACKUP))
    await eventually(lambda: "answered" in sink.kinds())
    await bridge.desk.cancel(
        CancelTransfer(call_id="call-1", transfer_id="t-1", reason="caller_hung_up")
    )
    await sink.wait_for_end("t-1")
    assert sink.kinds() == ["dialing", "ringing", "answered", "cancelled"]
    assert sink.events_of("t-1", TransferCancelled)[0].reason == "caller_hung_up"
    [leg] = bridge.desk.legs("call-1").legs
    assert (leg.state, leg.ended_by) == (LegState.ENDED, "hung up by the bridge")
    assert open_legs(bridge) == set()
    with pytest.raises(TransferFinished):
        decide(bridge, "t-1", HumanDecision.ACCEPT)


async def test_a_consult_room_of_another_room_is_refused_before_dialling(sink: Any) -> None:
    bridge = make_bridge(sink)
    for room in ("room-2-consult-abc", "room-1", "room-1-consult-", "room-1-consult-a b"):
        reply = await bridge.desk.place(
            place(call_id=f"c-{len(room)}", transfer_id=f"t-{room}", consult_room=room)
        )
        assert isinstance(reply, TransferRejected), room
        assert reply.reason is FailureReason.REJECTED_BY_POLICY
    assert "dialing" not in sink.kinds()


async def test_legs_of_an_unknown_call_are_empty(sink: Any) -> None:
    bridge = make_bridge(sink)
    legs = bridge.desk.legs("nobody")
    assert (legs.in_progress, legs.legs) == ([], [])


async def test_a_cancel_for_a_crashed_instances_transfer_ends_it_and_is_answered(
    sink: Any,
) -> None:
    """Finding 9: the instance that took the cancel did not know the transfer (it ran on
    one that crashed) and answered ``not_found``; the caller's legs stayed up."""
    journal = MemoryJournal()
    crashed = make_bridge(sink, journal=journal, owner="bridge-a")
    script(crashed, SimOutcome.ANSWER, ring_s=30.0)
    await crashed.desk.place(place())
    await eventually(lambda: "ringing" in sink.kinds("t-1"), message="the ringing")
    assert (await journal.load("t-1")) is not None
    journal.dead.add("bridge-a")  # it stops: nothing more from it

    survivor = make_bridge(type(sink)(), journal=journal, owner="bridge-b")
    cancel = CancelTransfer(call_id="call-1", transfer_id="t-1", reason="caller hung up")
    reply = await survivor.desk.cancel(cancel)
    assert reply == TransferCancelled(call_id="call-1", transfer_id="t-1", reason="caller hung up")
    assert await survivor.desk.cancel(cancel) == reply  # asked again: the same answer
    claim = await journal.load("t-1")
    assert claim is not None
    assert (claim.entry.owner, claim.entry.ended) == ("bridge-b", "cancelled")
    legs = survivor.desk.legs("call-1")
    assert [(leg.attempt, leg.state) for leg in legs.legs] == [(1, LegState.ENDED)]
    # Nothing is left for the next sweep, and a third instance answers from the journal.
    assert await survivor.desk.recover_orphans() == 0
    third = make_bridge(type(sink)(), journal=journal, owner="bridge-c")
    assert await third.desk.cancel(cancel) == reply
    crashed_task = crashed.desk._active["t-1"].task
    assert crashed_task is not None
    crashed_task.cancel()  # the "crashed" desk's own task, left running in this process


async def test_a_sweep_fails_a_crashed_instances_transfer_once(sink: Any) -> None:
    """Finding 9: two surviving instances sweep; one claims the record and publishes the
    final ``bridge_lost`` failure under the id the crashed one would have used, naming
    the router decision behind the transfer (kept in the journal record)."""
    journal = MemoryJournal()
    crashed_sink = type(sink)()
    crashed = make_bridge(crashed_sink, journal=journal, owner="bridge-a")
    script(crashed, SimOutcome.ANSWER, ring_s=30.0)
    await crashed.desk.place(place(decision_id="decision-1"))
    await eventually(lambda: journal.records["t-1"].entry.attempt == 1, message="the dial")
    journal.dead.add("bridge-a")
    one = make_bridge(sink, journal=journal, owner="bridge-b")
    other = make_bridge(sink, journal=journal, owner="bridge-c")
    assert [await one.desk.recover_orphans(), await other.desk.recover_orphans()] == [1, 0]
    (final,) = sink.events_of("t-1", TransferFailed)
    assert (final.reason, final.final, final.attempt) == (FailureReason.BRIDGE_LOST, True, 1)
    assert final.decision_id == "decision-1"
    assert {getattr(e, "decision_id", None) for _, e in crashed_sink.events} == {"decision-1"}
    assert [event_id for event_id, _ in sink.events] == ["t-1:failed:final"]
    crashed_task = crashed.desk._active["t-1"].task
    assert crashed_task is not None
    crashed_task.cancel()


async def test_no_leg_is_dialled_before_its_journal_record_is_written(sink: Any) -> None:
    """Chaos run: a transfer placed while nats-server restarted got no journal record (the
    write timed out and the desk dialled anyway); its bridge was killed mid-ring and no
    instance knew to end it. The record before a dial is retried until it is written."""
    journal = UnreachableJournal(failures=3)  # the place's write and two before the dial
    bridge = make_bridge(sink, journal=journal, owner="bridge-a")
    script(bridge, SimOutcome.ANSWER, ring_s=30.0)
    await bridge.desk.place(place())
    await eventually(lambda: "ringing" in sink.kinds("t-1"), message="the ringing")
    assert [(e.attempt, e.destination) for e in journal.saved] == [(1, MAIN)]
    await bridge.desk.cancel(CancelTransfer(call_id="call-1", transfer_id="t-1"))
    assert open_legs(bridge) == set()


async def test_a_transfer_that_cannot_be_recorded_fails_for_good_without_dialling(
    sink: Any,
) -> None:
    """A leg dialled without a record is one a crash would orphan: past the wait for the
    journal, the transfer fails (final, ``carrier_error``) and nothing is dialled."""
    journal = UnreachableJournal(failures=10**6)
    bridge = make_bridge(sink, journal=journal, owner="bridge-a", transfer_journal_wait_s=0.3)
    script(bridge, SimOutcome.ANSWER, ring_s=30.0)
    await bridge.desk.place(place(MAIN, BACKUP))
    await sink.wait_for_end("t-1")
    assert sink.kinds("t-1") == ["failed"]
    (final,) = sink.events_of("t-1", TransferFailed)
    assert (final.reason, final.final) == (FailureReason.CARRIER_ERROR, True)
    assert final.detail == "the transfer could not be recorded, so nothing was dialled"
    assert bridge.desk.legs("call-1").legs == []
    assert isinstance(bridge.driver, SimulatedCarrier)
    assert bridge.driver.dials == 0


async def test_cancelling_while_the_record_is_retried_dials_nothing(sink: Any) -> None:
    journal = UnreachableJournal(failures=10**6)
    bridge = make_bridge(sink, journal=journal, owner="bridge-a", transfer_journal_wait_s=60.0)
    await bridge.desk.place(place())
    await eventually(lambda: journal.failures < 10**6 - 2, message="a retried write")
    cancel = CancelTransfer(call_id="call-1", transfer_id="t-1", reason="caller hung up")
    assert await bridge.desk.cancel(cancel) == TransferCancelled(
        call_id="call-1", transfer_id="t-1", reason="caller hung up"
    )
    await sink.wait_for_end("t-1")
    assert sink.kinds("t-1") == ["cancelled"]
    assert bridge.desk.legs("call-1").legs == []


async def test_the_end_of_a_transfer_is_recorded_through_a_bucket_outage(sink: Any) -> None:
    """An end left unrecorded leaves the record "in progress": once this instance is gone,
    a sweep would hang up the connected call and fail it a second time."""
    journal = UnreachableJournal(failures=0)
    bridge = make_bridge(sink, journal=journal, owner="bridge-a")
    script(bridge, SimOutcome.ANSWER, ring_s=0.2)
    await bridge.desk.place(place(mode=TransferMode.COLD))
    await eventually(lambda: "ringing" in sink.kinds("t-1"), message="the ringing")
    journal.failures = 3  # the bucket goes away as the human answers
    await sink.wait_for_end("t-1")
    await eventually(lambda: journal.records["t-1"].entry.ended, message="the recorded end")
    assert journal.records["t-1"].entry.ended == "connected"
    journal.dead.add("bridge-a")
    survivor = make_bridge(type(sink)(), journal=journal, owner="bridge-b")
    assert await survivor.desk.recover_orphans() == 0
