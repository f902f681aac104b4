"""Warm transfers from the voice worker's side, in text mode against in-test backends on
real NATS: the transfer line and hold, the briefing in the consult room, the human's
decision, failover, waiting in line, the caller hanging up, and what each party heard."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest
from nats.aio.client import Client as NATS

from switchboard.contracts.call import CallOutcome
from switchboard.contracts.consent import ConsentDecision
from switchboard.contracts.escalation import HandoffDecision, HandoffTarget, TransferMode
from switchboard.contracts.transfer import (
    CALLER_HUNG_UP,
    DeclineReason,
    HumanDecision,
    LegState,
    TransferLegs,
    TransferQueued,
)
from switchboard.simulation.observer import CallObserver
from switchboard.simulation.scenario import Human
from switchboard.testing import eventually
from switchboard.testing.fake_backends import Backends, FakeBridge, FakeLedger, FakeRouter
from switchboard.voice.agents.briefing import CONNECTING, DECLINED, OPENER
from switchboard.voice.state import CallInfo, CallState
from switchboard.voice.transfer.facts import BRIEFING_START
from switchboard.voice.transfer.flow import GOODBYE, TRYING_NEXT, queued_line, transfer_mode
from switchboard.voice.transfer.hold import STILL_TRYING, CallerHold, NoHoldAudio
from switchboard.voice.wiring import Bus

HarnessFactory = Any
PERSON = "I want to talk to a real person."
BUSY_HUMAN = Human(says=["Hello?", "Sorry, I can't take this one, I'm on another call."])


async def to_person(start_call: HarnessFactory, **kw: Any) -> Any:
    """A call that consented and got to billing; the next turn asks for a person."""
    h = await start_call(**kw)
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I have a question about my bill.")
    return h


def consult_lines(h: Any, attempt: int) -> list[tuple[str, str]]:
    return [
        (line.speaker, line.text)
        for line in h.transcript.lines
        if line.side == "consult" and line.attempt == attempt
    ]


async def test_an_accepting_human_is_briefed_first_and_the_caller_hears_goodbye_before_the_move(
    backends: Backends, start_call: HarnessFactory, bus: Bus
) -> None:
    h = await to_person(start_call)
    observer = await CallObserver(t0=h.transcript.t0).start(bus.nc, h.call.call_id)
    await h.session.run(user_input=PERSON)
    assert h.call.state.outcome is CallOutcome.TRANSFERRED
    [placed] = backends.bridge.placed
    assert placed.mode is TransferMode.WARM
    assert placed.consult_room is not None
    assert placed.consult_room.startswith(f"{h.call.state.info.room}-consult-")
    assert placed.context is not None
    assert placed.context.consent is ConsentDecision.GRANTED

    # The human: the opener (nothing personal), the briefing on their first words, then
    # "connecting" once they accepted.
    briefing, consult = h.briefed(), consult_lines(h, 1)
    assert consult[0] == ("briefing", OPENER)
    assert consult[1] == ("human", "Hello?")
    assert consult[2][1].startswith(BRIEFING_START)
    for fact in ("+14155550123", "billing", "agreed to recording", PERSON, "English"):
        assert fact in consult[2][1]
    assert consult[-2:] == [("human", "Yes, put them through."), ("briefing", CONNECTING)]
    assert briefing[-1] == CONNECTING
    [decision] = backends.bridge.decisions
    assert (decision.attempt, decision.decision) == (1, HumanDecision.ACCEPT)

    # The caller: the router's transfer line, then the goodbye, said before the bridge was
    # told (so before the move), and nothing after it.
    await eventually(lambda: observer.of_kind("transfer.connected"))
    transfer_line = observer.of_kind("escalation.decided")[0].data["say"]
    assert h.said()[-2:] == [transfer_line, GOODBYE]
    briefed = observer.of_kind("transfer.briefed")[0]
    goodbye = next(line for line in h.transcript.lines if line.text == GOODBYE)
    spoken = next(line for line in h.transcript.lines if line.text.startswith(BRIEFING_START))
    assert spoken.at_s < goodbye.at_s < briefed.at_s
    assert not h.call.state.on_hold
    await observer.close()


async def test_a_declining_human_is_replaced_by_the_next_and_the_caller_hears_so(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await to_person(start_call, humans=[BUSY_HUMAN])
    await h.session.run(user_input=PERSON)
    assert h.call.state.outcome is CallOutcome.TRANSFERRED
    assert [(d.attempt, d.decision, d.decline_reason) for d in backends.bridge.decisions] == [
        (1, HumanDecision.DECLINE, DeclineReason.BUSY),
        (2, HumanDecision.ACCEPT, None),
    ]
    assert consult_lines(h, 1)[-1] == ("briefing", DECLINED)
    assert consult_lines(h, 2)[2][1].startswith(BRIEFING_START)  # Each human is briefed.
    assert TRYING_NEXT in h.said()
    assert h.said()[-1] == GOODBYE


async def test_a_voicemail_greeting_is_recognised_before_anything_about_the_caller_is_said(
    backends: Backends, start_call: HarnessFactory
) -> None:
    greeting = "Hi, you've reached Sam. Please leave a message after the tone."
    h = await to_person(start_call, humans=[Human(says=[greeting])])
    await h.session.run(user_input=PERSON)
    assert [d.decision for d in backends.bridge.decisions] == [
        HumanDecision.VOICEMAIL,
        HumanDecision.ACCEPT,
    ]
    assert consult_lines(h, 1) == [("briefing", OPENER), ("human", greeting)]
    assert h.call.state.outcome is CallOutcome.TRANSFERRED


async def test_a_human_who_hangs_up_during_the_briefing_counts_as_declining(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await to_person(start_call, humans=[Human(says=["Hello?"], hangs_up=True)])
    await h.session.run(user_input=PERSON)
    assert [d.decision for d in backends.bridge.decisions] == [
        HumanDecision.HUNG_UP,
        HumanDecision.ACCEPT,
    ]
    assert TRYING_NEXT in h.said()
    assert h.call.state.outcome is CallOutcome.TRANSFERRED


async def test_a_question_is_answered_from_the_call_before_the_human_accepts(
    backends: Backends, start_call: HarnessFactory
) -> None:
    human = Human(says=["Hi, Sam here.", "What did they say?", "Okay, put them through."])
    h = await to_person(start_call, humans=[human])
    await h.session.run(user_input=PERSON)
    consult = consult_lines(h, 1)
    asked = consult.index(("human", "What did they say?"))
    assert consult[asked + 1] == ("briefing", f"What they said last: {PERSON}")
    assert h.call.state.outcome is CallOutcome.TRANSFERRED


async def test_a_question_the_call_cannot_answer_is_not_guessed(
    backends: Backends, start_call: HarnessFactory
) -> None:
    human = Human(says=["Hi.", "What's their account number?", "Fine, put them through."])
    h = await to_person(start_call, humans=[human])
    await h.session.run(user_input=PERSON)
    consult = consult_lines(h, 1)
    asked = consult.index(("human", "What's their account number?"))
    assert "don't have that" in consult[asked + 1][1]


async def test_when_every_human_declines_the_caller_comes_off_hold_and_gets_a_callback(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await to_person(start_call, humans=[BUSY_HUMAN, BUSY_HUMAN])
    await h.session.run(user_input=PERSON)
    assert [d.decision for d in backends.bridge.decisions] == [HumanDecision.DECLINE] * 2
    assert not h.call.state.on_hold
    assert "couldn't reach anyone" in h.said()[-1]
    assert GOODBYE not in h.said()  # Nobody said yes, so nobody heard "connecting".
    result = await h.session.run(user_input="Yes please, call me back.")
    result.expect.contains_function_call(name="accept_callback")
    assert h.call.state.outcome is CallOutcome.CALLBACK


async def slow_bridge(nc: NATS, **kw: Any) -> FakeBridge:
    await FakeLedger(nc).start()
    await FakeRouter(nc).start()
    return await FakeBridge(nc, **kw).start()


async def test_a_caller_who_hangs_up_while_it_rings_cancels_the_transfer_and_every_leg(
    nc: NATS, start_call: HarnessFactory
) -> None:
    hanging_up = asyncio.Event()
    bridge = await slow_bridge(nc, ring_s=10.0, hangup_gate=hanging_up)
    h = await to_person(start_call)
    run = asyncio.ensure_future(h.session.run(user_input=PERSON))
    await eventually(lambda: bridge.legs.get(h.call.call_id))
    h.call.caller_left()
    await asyncio.wait_for(run, 5)
    hanging_up.set()  # the carrier hangs up only now, after the conversation has ended
    await h.call.finish()  # The call's teardown, which waits for the legs to be hung up.
    # A cancel is retried when the bridge is slow to answer (it is idempotent): every one
    # sent names this transfer and the hang-up.
    cancels = {(c.transfer_id, c.reason) for c in bridge.cancelled}
    assert cancels == {(bridge.placed[0].transfer_id, CALLER_HUNG_UP)}
    assert bridge.open_legs(h.call.call_id) == []
    assert h.call.state.outcome is CallOutcome.ABANDONED
    said = " ".join(h.said())
    assert GOODBYE not in said
    assert "couldn't reach" not in said  # Nobody is there to be offered anything.


async def test_a_caller_who_hangs_up_during_the_briefing_cancels_it(
    backends: Backends, start_call: HarnessFactory
) -> None:
    undecided = Human(says=["Hello?"])
    h = await to_person(start_call, humans=[undecided])
    run = asyncio.ensure_future(h.session.run(user_input=PERSON))
    await eventually(lambda: any(t.startswith(BRIEFING_START) for t in h.briefed()))
    h.call.caller_left()
    await asyncio.wait_for(run, 5)
    await h.call.finish()
    assert {c.reason for c in backends.bridge.cancelled} == {CALLER_HUNG_UP}
    assert backends.bridge.decisions == []
    assert backends.bridge.open_legs(h.call.call_id) == []
    assert h.call.state.outcome is CallOutcome.ABANDONED


async def test_the_caller_speaking_on_hold_neither_cancels_the_transfer_nor_gets_an_answer(
    nc: NATS, start_call: HarnessFactory
) -> None:
    bridge = await slow_bridge(nc, ring_s=1.0)
    h = await to_person(start_call)
    run = asyncio.ensure_future(h.session.run(user_input=PERSON))
    await eventually(lambda: bridge.legs.get(h.call.call_id))
    said_before = list(h.said())
    # What a text participant's words do in a room (livekit's default text input):
    # interrupt, then a turn. Neither may stop the transfer or be answered.
    with contextlib.suppress(RuntimeError):  # Refused while an uninterruptible line plays.
        await h.session.interrupt()
    h.session.generate_reply(user_input="Okay, thanks. Hello? Are you still there?")
    await asyncio.wait_for(run, 10)
    assert bridge.cancelled == []
    assert h.call.state.outcome is CallOutcome.TRANSFERRED
    assert h.said()[len(said_before) :] == [GOODBYE]


async def test_the_caller_on_hold_hears_that_we_are_still_trying(
    nc: NATS, start_call: HarnessFactory, settings: Any
) -> None:
    bridge = await slow_bridge(nc, ring_s=1.0)
    quick = msgspec.structs.replace(settings, hold_reminder_s=0.2)
    h = await to_person(start_call, configured=quick)
    await h.session.run(user_input=PERSON)
    assert STILL_TRYING in h.said()
    assert h.said()[-1] == GOODBYE
    assert bridge.cancelled == []


async def test_a_transfer_waiting_for_a_free_line_tells_the_caller_their_place(
    nc: NATS, start_call: HarnessFactory
) -> None:
    await slow_bridge(nc, queue_position=3)
    h = await to_person(start_call)
    await h.session.run(user_input=PERSON)
    waiting = next(line for line in h.said() if "in line" in line)
    assert "number 3" in waiting
    assert "12 seconds" in waiting
    assert h.call.state.outcome is CallOutcome.TRANSFERRED


async def test_legs_of_every_attempt_are_over_after_a_transfer(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await to_person(start_call, humans=[BUSY_HUMAN])
    await h.session.run(user_input=PERSON)

    async def settled() -> TransferLegs:
        # The bridge's transfer task ends just after it publishes ``connected`` (it
        # waits for the stream's ack), so the caller can be through a moment before.
        legs: TransferLegs | None = await h.call.ports.transfer.legs(h.call.call_id)
        assert legs is not None
        assert legs.in_progress == []
        return legs

    legs = await eventually(settled, message="the transfer is still in progress")
    assert [(leg.attempt, leg.state) for leg in legs.legs] == [
        (1, LegState.ENDED),
        (2, LegState.ENDED),
    ]


def decision(target: HandoffTarget, mode: TransferMode = TransferMode.WARM) -> HandoffDecision:
    return HandoffDecision(call_id="c", request_id="r", target=target, say="x", transfer_mode=mode)


@pytest.mark.parametrize(
    ("target", "mode", "expected"),
    [
        (HandoffTarget.HUMAN_QUEUE, TransferMode.WARM, TransferMode.WARM),
        (HandoffTarget.HUMAN_QUEUE, TransferMode.COLD, TransferMode.COLD),
        (HandoffTarget.VOICEMAIL, TransferMode.WARM, TransferMode.COLD),
    ],
)
def test_voicemail_boxes_are_always_referred_and_queues_as_the_rules_say(
    target: HandoffTarget, mode: TransferMode, expected: TransferMode
) -> None:
    assert transfer_mode(decision(target, mode)) is expected


class FakeInput:
    """The audio input side of a room session (what ``session.input`` offers)."""

    def __init__(self) -> None:
        self.audio: object | None = object()
        self.audio_enabled = True

    def set_audio_enabled(self, enabled: bool) -> None:
        self.audio_enabled = enabled


async def test_hold_turns_a_room_callers_microphone_off_and_back_on() -> None:
    state = CallState(info=CallInfo(call_id="c", room="r", caller_identity="p"))
    session = SimpleNamespace(input=FakeInput())
    hold = CallerHold(cast(Any, session), state, NoHoldAudio(), reminder_s=60)
    await hold.begin()
    assert (session.input.audio_enabled, state.on_hold) == (False, True)
    await hold.end()
    assert (session.input.audio_enabled, state.on_hold) == (True, False)


@pytest.mark.parametrize(
    ("wait", "heard"),
    [
        (0.4, None),  # Too short to mention.
        (None, "You're number 2. Please stay on the line."),  # Waits for a call to end.
        (12.0, "You're number 2, and it should be about 12 seconds."),
        (150.0, "You're number 2, and it should be about 2 minutes."),
    ],
)
def test_a_caller_in_line_hears_their_place_and_a_wait_only_when_it_is_known(
    wait: float | None, heard: str | None
) -> None:
    event = TransferQueued(
        call_id="c", transfer_id="t", position=2, max_wait_s=120, estimated_wait_s=wait
    )
    line = queued_line(event)
    if heard is None:
        assert line is None
    else:
        assert line is not None
        assert heard in line


class UnreachableConsultRooms:
    """A consult room that cannot be joined (LiveKit down, in production)."""

    def open(self, info: CallInfo, transfer_id: str) -> Any:
        return SimpleNamespace(room="r-consult-x", start=self._fail, close=self._closed)

    async def _fail(self, agent: Any) -> None:
        raise ConnectionError("consult room unreachable")

    async def _closed(self) -> None:
        return None


async def test_without_a_consult_room_nobody_is_dialled_and_a_callback_is_offered(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await to_person(start_call)
    h.call.ports = dataclasses.replace(h.call.ports, consult=UnreachableConsultRooms())
    await h.session.run(user_input=PERSON)
    assert backends.bridge.placed == []
    assert not h.call.state.on_hold
    assert "couldn't reach anyone" in h.said()[-1]


async def ringing_patiently(
    bridge: FakeBridge, start_call: HarnessFactory, settings: Any
) -> tuple[Any, asyncio.Future[Any]]:
    """A call put through to a person, ringing at ``bridge``, that would wait on hold for
    minutes and notices a silent bridge after 1 s."""
    patient = msgspec.structs.replace(
        settings, transfer_answer_timeout_s=300.0, transfer_bridge_silent_s=1.0
    )
    h = await to_person(start_call, configured=patient)
    run = asyncio.ensure_future(h.session.run(user_input=PERSON))
    await eventually(lambda: bridge.legs.get(h.call.call_id))
    return h, run


async def told_within_seconds(h: Any, run: asyncio.Future[Any]) -> None:
    began = asyncio.get_running_loop().time()
    await asyncio.wait_for(run, 10)
    assert asyncio.get_running_loop().time() - began < 5
    assert not h.call.state.on_hold


async def test_a_transfer_whose_bridge_instance_is_gone_is_given_up_while_others_answer(
    nc: NATS, start_call: HarnessFactory, settings: Any
) -> None:
    """Chaos run: a transfer whose bridge was killed waited 25-70 s, because the restarted
    instance answered the worker's "is any bridge there?" and its sweep of the journal was
    slow under load. The worker asks the instance that took the transfer."""
    crashed = await slow_bridge(nc, ring_s=60.0)
    h, run = await ringing_patiently(crashed, start_call, settings)
    restarted = await FakeBridge(nc, ring_s=60.0).start()  # answers every PING but its own
    await crashed.stop()
    await told_within_seconds(h, run)
    # The cancel goes out beside the news (the caller does not wait for it).
    await eventually(lambda: restarted.cancelled, message="the cancel")
    assert [c.transfer_id for c in restarted.cancelled] == [crashed.placed[0].transfer_id]
    assert "couldn't reach anyone" in h.said()[-1]


async def test_a_silent_bridge_is_noticed_within_seconds_and_the_caller_is_offered_a_callback(
    nc: NATS, start_call: HarnessFactory, settings: Any
) -> None:
    """Finding 9: a crashed sip-bridge published nothing more and the caller waited on hold
    in silence until the answer timeout. The worker checks that a bridge still answers
    while it waits, and tells the caller within a few seconds of the silence."""
    bridge = await slow_bridge(nc, ring_s=60.0)
    h, run = await ringing_patiently(bridge, start_call, settings)
    await bridge.stop()  # the bridge dies mid-ring: no event, no answer, no PING
    await told_within_seconds(h, run)
    assert "couldn't reach anyone" in h.said()[-1]
    result = await h.session.run(user_input="Yes please, call me back.")
    result.expect.contains_function_call(name="accept_callback")
    assert h.call.state.outcome is CallOutcome.CALLBACK
