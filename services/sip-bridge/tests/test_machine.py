"""The transfer state machine on its own: every path, every illegal transition."""

from __future__ import annotations

import pytest

from switchboard.contracts import (
    Destination,
    FailureReason,
    TransferAnswered,
    TransferBriefed,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferMode,
    TransferQueued,
    TransferRinging,
)
from switchboard.sip_bridge.machine import (
    AttemptFailure,
    IllegalTransition,
    TransferMachine,
    TransferState,
)

D1 = Destination(id="billing-desk", address="+14155550100")
D2 = Destination(id="billing-backup", address="+14155550101")
BUSY = AttemptFailure(FailureReason.BUSY, 486, "Busy Here")


def machine(*destinations: Destination, mode: TransferMode = TransferMode.WARM) -> TransferMachine:
    return TransferMachine(
        call_id="call-1",
        transfer_id="t-1",
        destinations=destinations or (D1,),
        mode=mode,
    )


def test_a_warm_transfer_goes_through_every_state_and_emits_one_event_each() -> None:
    m = machine()
    emitted = [m.dial(), m.ringing(), m.answered("room-consult-x"), m.briefed(), m.connected()]
    assert [type(e.event) for e in emitted] == [
        TransferDialing,
        TransferRinging,
        TransferAnswered,
        TransferBriefed,
        TransferConnected,
    ]
    assert m.history == [
        TransferState.REQUESTED,
        TransferState.DIALING,
        TransferState.RINGING,
        TransferState.ANSWERED,
        TransferState.BRIEFED,
        TransferState.CONNECTED,
    ]
    assert m.terminal
    answered = emitted[2].event
    assert isinstance(answered, TransferAnswered)
    assert answered.consult_room == "room-consult-x"
    assert answered.destination_id == "billing-desk"
    assert answered.attempt == 1


def test_event_ids_are_deterministic_per_transfer_state_and_attempt() -> None:
    first = [e.event_id for e in (machine().dial(),)]
    again = [e.event_id for e in (machine().dial(),)]
    assert first == again == ["t-1:dialing:1"]
    m = machine(D1, D2)
    ids = [m.dial().event_id, *(e.event_id for e in m.fail(BUSY)), m.dial().event_id]
    assert ids == ["t-1:dialing:1", "t-1:failed:1", "t-1:dialing:2"]
    assert len(set(ids)) == len(ids)


def test_a_cold_transfer_connects_straight_after_the_answer() -> None:
    m = machine(mode=TransferMode.COLD)
    m.dial()
    m.answered()
    assert isinstance(m.connected().event, TransferConnected)
    assert m.state is TransferState.CONNECTED


def test_a_cold_transfer_cannot_be_briefed() -> None:
    m = machine(mode=TransferMode.COLD)
    m.dial()
    m.answered()
    with pytest.raises(IllegalTransition):
        m.briefed()


def test_a_far_end_may_answer_without_ringing_first() -> None:
    m = machine()
    m.dial()
    m.answered()
    assert m.state is TransferState.ANSWERED


def test_a_failed_attempt_fails_over_to_the_next_destination() -> None:
    m = machine(D1, D2)
    m.dial()
    emitted = m.fail(BUSY)
    assert len(emitted) == 1
    failed = emitted[0].event
    assert isinstance(failed, TransferFailed)
    assert (failed.reason, failed.final, failed.sip_status) == (FailureReason.BUSY, False, 486)
    assert failed.destination_id == "billing-desk"
    assert m.state is TransferState.REQUESTED
    dialing = m.dial().event
    assert isinstance(dialing, TransferDialing)
    assert (dialing.destination_id, dialing.attempt) == ("billing-backup", 2)


def test_the_last_failure_reports_the_attempt_then_all_destinations_failed() -> None:
    m = machine(D1, D2)
    m.dial()
    m.fail(BUSY)
    m.dial()
    m.ringing()
    emitted = m.fail(AttemptFailure(FailureReason.NO_ANSWER, 480, "Temporarily Unavailable"))
    events = [e.event for e in emitted]
    assert all(isinstance(e, TransferFailed) for e in events)
    attempt, final = events
    assert isinstance(attempt, TransferFailed)
    assert isinstance(final, TransferFailed)
    assert (attempt.reason, attempt.final, attempt.attempt) == (FailureReason.NO_ANSWER, False, 2)
    assert (final.reason, final.final) == (FailureReason.ALL_DESTINATIONS_FAILED, True)
    assert final.destination_id is None
    assert emitted[1].event_id == "t-1:failed:final"
    assert m.state is TransferState.FAILED


@pytest.mark.parametrize(
    "stage",
    ["dialing", "ringing", "answered", "briefed"],
)
def test_an_attempt_can_fail_in_every_stage_before_connected(stage: str) -> None:
    m = machine()
    m.dial()
    if stage in {"ringing", "answered", "briefed"}:
        m.ringing()
    if stage in {"answered", "briefed"}:
        m.answered()
    if stage == "briefed":
        m.briefed()
    emitted = m.fail(AttemptFailure(FailureReason.VOICEMAIL))
    assert m.state is TransferState.FAILED
    assert isinstance(emitted[-1].event, TransferFailed)
    assert emitted[-1].event.final


def test_a_caller_who_hung_up_ends_the_transfer_without_failover() -> None:
    m = machine(D1, D2)
    m.dial()
    m.answered()
    m.briefed()
    emitted = m.fail(AttemptFailure(FailureReason.CALLER_HUNG_UP))
    assert len(emitted) == 1
    event = emitted[0].event
    assert isinstance(event, TransferFailed)
    assert (event.reason, event.final, event.destination_id) == (
        FailureReason.CALLER_HUNG_UP,
        True,
        "billing-desk",
    )
    assert m.remaining == 1
    with pytest.raises(IllegalTransition):
        m.dial()


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 4])
def test_cancel_works_from_every_state_that_is_not_terminal(steps: int) -> None:
    m = machine()
    actions = [m.dial, m.ringing, m.answered, m.briefed]
    for action in actions[:steps]:
        action()
    emitted = m.cancel("caller hung up")
    assert isinstance(emitted.event, TransferCancelled)
    assert emitted.event.reason == "caller hung up"
    assert emitted.event_id == "t-1:cancelled"
    assert m.state is TransferState.CANCELLED


def test_terminal_states_refuse_every_further_transition() -> None:
    connected = machine()
    for action in (connected.dial, connected.ringing, connected.answered, connected.briefed):
        action()
    connected.connected()
    failed = machine()
    failed.dial()
    failed.fail(BUSY)
    cancelled = machine()
    cancelled.cancel("no")
    for m in (connected, failed, cancelled):
        with pytest.raises(IllegalTransition):
            m.cancel("again")
        with pytest.raises(IllegalTransition):
            m.dial()
        with pytest.raises(IllegalTransition):
            m.abandon(BUSY)


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "ringing"),
        ([], "answered"),
        ([], "briefed"),
        ([], "connected"),
        (["dial"], "dial"),
        (["dial"], "briefed"),
        (["dial"], "connected"),
        (["dial", "ringing"], "ringing"),
        (["dial", "answered"], "connected"),
        (["dial", "answered"], "ringing"),
        (["dial", "answered", "briefed"], "answered"),
    ],
)
def test_out_of_order_transitions_raise(setup: list[str], action: str) -> None:
    m = machine()
    for step in setup:
        getattr(m, step)()
    before = m.state
    with pytest.raises(IllegalTransition) as raised:
        getattr(m, action)()
    assert m.state is before
    assert before.value in str(raised.value)


def test_failing_an_attempt_that_has_not_started_raises() -> None:
    with pytest.raises(IllegalTransition):
        machine().fail(BUSY)


def test_a_skipped_destination_is_reported_only_before_the_first_dial() -> None:
    m = machine(D1)
    skipped = m.skip(D2, "the number is international")
    assert isinstance(skipped.event, TransferFailed)
    assert skipped.event.reason is FailureReason.REJECTED_BY_POLICY
    assert (skipped.event.final, skipped.event.attempt) == (False, 0)
    assert skipped.event_id == "t-1:skipped:1"
    m.dial()
    with pytest.raises(IllegalTransition):
        m.skip(D2, "late")


def test_abandoning_before_any_dial_is_a_final_failure_without_a_destination() -> None:
    m = TransferMachine(call_id="c", transfer_id="t", destinations=[], mode=TransferMode.WARM)
    emitted = m.abandon(AttemptFailure(FailureReason.REJECTED_BY_POLICY, detail="no destination"))
    event = emitted.event
    assert isinstance(event, TransferFailed)
    assert (event.reason, event.final, event.destination_id, event.attempt) == (
        FailureReason.REJECTED_BY_POLICY,
        True,
        None,
        0,
    )
    assert m.state is TransferState.FAILED


def test_a_transfer_waiting_for_a_dial_slot_is_queued_once_then_dials() -> None:
    m = machine()
    queued = m.queued(3, 120.0, 2.0)
    assert isinstance(queued.event, TransferQueued)
    assert (queued.event.position, queued.event.max_wait_s, queued.event.estimated_wait_s) == (
        3,
        120.0,
        2.0,
    )
    assert queued.event_id == "t-1:queued"
    with pytest.raises(IllegalTransition):
        m.queued(1, 120.0)
    m.dial()
    assert m.history[:3] == [TransferState.REQUESTED, TransferState.QUEUED, TransferState.DIALING]


def test_a_queued_transfer_can_be_cancelled_or_abandoned_without_a_destination() -> None:
    m = machine()
    m.queued(1, 120.0)
    final = m.abandon(AttemptFailure(FailureReason.QUEUE_TIMEOUT, detail="no dial slot"))
    assert isinstance(final.event, TransferFailed)
    assert (final.event.reason, final.event.final, final.event.destination_id) == (
        FailureReason.QUEUE_TIMEOUT,
        True,
        None,
    )
    cancelled = machine()
    cancelled.queued(1, 120.0)
    assert isinstance(cancelled.cancel("caller_hung_up").event, TransferCancelled)


def test_a_failover_attempt_is_never_queued() -> None:
    m = machine(D1, D2)
    m.dial()
    m.fail(BUSY)
    with pytest.raises(IllegalTransition, match="has dialled"):
        m.queued(1, 120.0)


def test_the_briefed_event_names_the_attempt_of_the_accepting_human() -> None:
    m = machine(D1, D2)
    m.dial()
    m.answered("room-1-consult-x", "human-x-1")
    m.fail(AttemptFailure(FailureReason.HUMAN_DECLINED, detail="declined: busy"))
    m.dial()
    answered = m.answered("room-1-consult-x", "human-x-2").event
    assert isinstance(answered, TransferAnswered)
    assert answered.human_identity == "human-x-2"
    briefed = m.briefed().event
    assert isinstance(briefed, TransferBriefed)
    assert (briefed.destination_id, briefed.attempt) == ("billing-backup", 2)
