"""The recording gate: never records without a granted receipt; stops on revocation."""

from __future__ import annotations

import pytest
from livekit.agents import Agent, AgentSession
from livekit.agents.voice.turn import TurnHandlingOptions

from switchboard.contracts.base import Message, utcnow
from switchboard.contracts.call import RecordingStarted, RecordingStopped, RecordingStopReason
from switchboard.contracts.consent import (
    ConsentDecision,
    ConsentMode,
    ConsentReceipt,
    ConsentRecorded,
    ConsentRevoked,
)
from switchboard.voice.brain import RulesBrain
from switchboard.voice.recording import RecordingGate, SessionRecordSwitch, session_record_options

CALL = "call-1"


class Sink:
    def __init__(self) -> None:
        self.published: list[Message] = []

    async def publish(self, payload: Message) -> str | None:
        self.published.append(payload)
        return "id"


class FakeRecorder:
    def __init__(self, fail_start: bool = False, fail_stop: bool = False) -> None:
        self.active: set[str] = set()
        self.starts = 0
        self.fail_start = fail_start
        self.fail_stop = fail_stop

    async def start(self, call_id: str) -> str | None:
        if self.fail_start:
            raise RuntimeError("egress down")
        self.starts += 1
        egress = f"eg-{self.starts}"
        self.active.add(egress)
        return egress

    async def stop(self, recording_id: str | None) -> None:
        if self.fail_stop:
            raise RuntimeError("egress down")
        self.active.discard(recording_id or "")


def _receipt(seq: int = 7) -> ConsentReceipt:
    return ConsentReceipt(sequence=seq, chain_hash="a" * 64, recorded_at=utcnow())


def recorded(decision: ConsentDecision, call_id: str = CALL, seq: int = 7) -> ConsentRecorded:
    return ConsentRecorded(
        call_id=call_id,
        command_id=f"cmd-{seq}",
        decision=decision,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_version="v1",
        receipt=_receipt(seq),
    )


def gate() -> tuple[RecordingGate, FakeRecorder, Sink]:
    recorder, sink = FakeRecorder(), Sink()
    return RecordingGate(CALL, recorder, sink), recorder, sink


@pytest.mark.parametrize(
    "event",
    [
        None,
        recorded(ConsentDecision.DENIED),
        recorded(ConsentDecision.UNCLEAR),
        recorded(ConsentDecision.GRANTED, call_id="another-call"),
    ],
    ids=["no receipt", "denied", "unclear", "another call's grant"],
)
async def test_recording_never_starts_without_a_granted_receipt_for_this_call(
    event: ConsentRecorded | None,
) -> None:
    g, recorder, sink = gate()
    await g.apply(event)
    assert recorder.starts == 0
    assert not g.recording
    assert sink.published == []


async def test_a_granted_receipt_starts_recording_once_with_its_sequence() -> None:
    g, recorder, sink = gate()
    await g.apply(recorded(ConsentDecision.GRANTED, seq=12))
    await g.apply(recorded(ConsentDecision.GRANTED, seq=13))
    assert recorder.starts == 1
    assert sink.published == [RecordingStarted(call_id=CALL, consent_sequence=12, egress_id="eg-1")]
    assert [t.action for t in g.timeline] == ["started"]


async def test_the_caller_withdrawing_consent_stops_recording_before_the_ledger_confirms() -> None:
    g, recorder, sink = gate()
    await g.apply(recorded(ConsentDecision.GRANTED))
    await g.revoke_now()
    assert not g.recording
    assert recorder.active == set()
    assert sink.published[-1] == RecordingStopped(
        call_id=CALL, reason=RecordingStopReason.CONSENT_REVOKED, egress_id="eg-1"
    )


@pytest.mark.parametrize(
    "revocation",
    [
        ConsentRevoked(call_id=CALL, command_id="cmd-9", receipt=_receipt(9)),
        recorded(ConsentDecision.REVOKED, seq=9),
    ],
    ids=["ConsentRevoked", "ConsentRecorded(revoked)"],
)
async def test_a_revocation_receipt_stops_recording(
    revocation: ConsentRevoked | ConsentRecorded,
) -> None:
    g, recorder, _ = gate()
    await g.apply(recorded(ConsentDecision.GRANTED))
    await g.apply(revocation)
    assert not g.recording
    assert recorder.active == set()
    assert g.revoked


async def test_after_a_revocation_a_late_grant_does_not_restart_recording() -> None:
    g, recorder, _ = gate()
    await g.revoke_now()
    await g.apply(recorded(ConsentDecision.GRANTED))
    assert recorder.starts == 0
    assert g.timeline[-1].action == "kept_off"


async def test_closing_stops_an_active_recording_as_call_ended() -> None:
    g, recorder, sink = gate()
    await g.apply(recorded(ConsentDecision.GRANTED))
    await g.close()
    await g.close()
    stops = [p for p in sink.published if isinstance(p, RecordingStopped)]
    assert [s.reason for s in stops] == [RecordingStopReason.CALL_ENDED]
    assert recorder.active == set()


async def test_a_recorder_that_fails_to_start_publishes_nothing() -> None:
    recorder, sink = FakeRecorder(fail_start=True), Sink()
    g = RecordingGate(CALL, recorder, sink)
    await g.apply(recorded(ConsentDecision.GRANTED))
    assert not g.recording
    assert sink.published == []
    assert g.timeline[-1].action == "failed"


async def test_a_failed_stop_is_reported_as_an_error() -> None:
    recorder, sink = FakeRecorder(fail_stop=True), Sink()
    g = RecordingGate(CALL, recorder, sink)
    await g.apply(recorded(ConsentDecision.GRANTED))
    await g.revoke_now()
    stopped = sink.published[-1]
    assert isinstance(stopped, RecordingStopped)
    assert stopped.reason is RecordingStopReason.ERROR


def text_session() -> AgentSession[None]:
    return AgentSession[None](
        llm=RulesBrain(), vad=None, turn_handling=TurnHandlingOptions(turn_detection=None)
    )


async def test_session_recording_follows_the_gate_on_a_started_session() -> None:
    session = text_session()
    switch = SessionRecordSwitch(session)  # Made before start, as the worker does.
    await session.start(Agent(instructions="Say nothing."), record=session_record_options(False))
    try:
        g, _, _ = gate()
        g.on_change = switch
        assert session.options.recording_options["transcript"] is False
        await g.apply(recorded(ConsentDecision.GRANTED))
        assert session.options.recording_options["transcript"] is True
        assert session.options.recording_options["audio"] is False  # Egress's job
        await g.revoke_now()
        assert session.options.recording_options["transcript"] is False
    finally:
        await session.aclose()


async def test_starting_a_session_replaces_its_recording_options() -> None:
    """Why the switch must not keep the dict: a reference taken before start goes stale."""
    session = text_session()
    before = session.options.recording_options
    await session.start(Agent(instructions="Say nothing."), record=session_record_options(False))
    try:
        assert session.options.recording_options is not before
    finally:
        await session.aclose()


async def test_after_a_transfer_a_consented_recording_goes_on_with_the_person() -> None:
    g, recorder, sink = gate()
    await g.apply(recorded(ConsentDecision.GRANTED))
    assert await g.close(hand_over=True)
    assert recorder.active == {"eg-1"}  # Egress keeps recording the caller and the person.
    assert not any(isinstance(p, RecordingStopped) for p in sink.published)
    assert g.timeline[-1].action == "handed_over"
    assert g.timeline[-1].recording_id == "eg-1"


async def test_after_a_transfer_without_consent_nothing_is_recorded() -> None:
    g, recorder, sink = gate()
    await g.apply(recorded(ConsentDecision.DENIED))
    assert not await g.close(hand_over=True)
    assert recorder.starts == 0
    assert sink.published == []


async def test_a_call_that_was_not_transferred_stops_recording_when_it_ends() -> None:
    g, recorder, sink = gate()
    await g.apply(recorded(ConsentDecision.GRANTED))
    assert not await g.close()
    assert recorder.active == set()
    stopped = sink.published[-1]
    assert isinstance(stopped, RecordingStopped)
    assert stopped.reason is RecordingStopReason.CALL_ENDED
