"""Text-mode runner: plays one scenario through the real agent graph over the real bus.

The session has no room, audio or turn detector and the model is the one ``SB_BRAIN``
names (the rules brain by default); each scripted caller turn is one ``session.run``. The
humans who answer warm transfers are scripted too (``consult.py``), and while the caller
is on hold the scenario's ``[hold]`` lines are said the way a caller's voice reaches the
session (not at all, while its input is off), and the caller can hang up. Everything else
is production code: the same agents, the same clients (the back office too: the CRM
adapter over NATS, the demo CRM in ``make demo``) and the same services on the other end
of NATS. After the call, the runner asks the bridge what it still holds for the call
(``sb.transfer.legs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.agent_activity import ActivityClosedError
from opentelemetry import trace

from switchboard.contracts.simulation import ScriptCarrier
from switchboard.contracts.transfer import TransferLegs
from switchboard.simulation import report as reports
from switchboard.simulation.audio import play as audio_play
from switchboard.simulation.audio.rig import AudioMode, AudioRig, scaled, voice_activity
from switchboard.simulation.consult import ScriptedConsultRooms
from switchboard.simulation.observer import CallObserver, ObservedEvent
from switchboard.simulation.scenario import Hold, Scenario
from switchboard.simulation.transcript import Line, Transcript
from switchboard.voice.agents.roster import Roster
from switchboard.voice.backoffice import BackOffice
from switchboard.voice.brain import RulesBrain
from switchboard.voice.call import Call
from switchboard.voice.clients.events import CallEventSink
from switchboard.voice.ports import Voices
from switchboard.voice.recording import TimelineRecorder
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.state import CallInfo
from switchboard.voice.tracing import call_span
from switchboard.voice.wiring import Bus, begin, new_call, new_session

log = logging.getLogger(__name__)

QUIET_S = 0.1
"""How long nothing may happen before a turn counts as finished (see ``_settle``)."""
SETTLE_TIMEOUT_S = 30.0
TRAILING_EVENTS_S = 3.0
LEGS_TIMEOUT_S = 5.0
"""How long the bridge may take to finish a transfer's bookkeeping after its last event."""


@dataclass(frozen=True, slots=True)
class Live:
    """Callbacks for printing a call as it happens."""

    on_line: Callable[[Line], None] | None = None
    on_event: Callable[[ObservedEvent], None] | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """Measurement hooks for the voice benchmark (``bench/voice_bench.py``)."""

    on_turn: Callable[[int, float], None] | None = None
    """Called with each turn's number and seconds: 0 is the opening (``begin`` and the
    greeting), then one per scripted caller turn (its ``session.run``)."""
    before_turn: Callable[[], Awaitable[None]] | None = None
    """Awaited before each scripted caller turn (a caller's pause)."""
    events: CallEventSink | None = None
    """Replaces the call's event publisher (a no-op, to measure what publishing costs).
    The report then holds only the other services' events, so event checks fail."""


async def run_scenario(
    scenario: Scenario,
    bus: Bus,
    settings: VoiceSettings,
    live: Live | None = None,
    probe: Probe | None = None,
    back_office: BackOffice | None = None,
    chat_model: llm.LLM[Any] | None = None,
    audio: AudioMode | None = None,
) -> reports.Report:
    """Play ``scenario`` as one call. ``back_office`` defaults to the production one (the
    CRM adapter over NATS) and ``chat_model`` to the rules brain; pass
    ``providers.language_model(...)`` to run the call through the LLM the settings name.
    With ``audio`` the call is spoken (``audio/``): the caller's turns are speech, heard by
    voice activity detection and a recogniser, and the agents' replies are played.

    Calls played at the same time need a model each: every session on an LLM instance
    hears all of that instance's metrics events, so a shared one makes each turn cost more
    with every call in progress (the production worker builds one per call)."""
    live = live or Live()
    probe = probe or Probe()
    call_id = scenario.run_call_id()
    t0 = time.monotonic()
    observer = await CallObserver(live.on_event, t0).start(bus.nc, call_id)
    info = CallInfo(
        call_id=call_id,
        room=f"text-{call_id}",
        caller_identity=f"caller-{call_id}",
        caller_number=scenario.caller_number,
        trunk=scenario.trunk,
        language=scenario.language,
    )
    chat_model = chat_model or RulesBrain()
    transcript = Transcript(live.on_line, t0)
    rig: AudioRig | None = None
    voices: Voices | None = None
    if audio is not None:
        settings = scaled(settings, audio.speed)
        rig = await AudioRig(audio, settings).start()
        recogniser, voice, voices = rig.models()
    consult = ScriptedConsultRooms(
        chat_model,
        transcript,
        scenario.humans,
        scenario.carrier.outcomes if scenario.carrier else (),
    )
    call = new_call(
        bus,
        settings,
        info,
        TimelineRecorder(),
        back_office,
        voices=voices,
        events=probe.events,
        consult=consult,
    )
    errors: list[str] = []
    if scenario.carrier is not None:
        scripted = await call.ports.transfer.script(
            ScriptCarrier(
                call_id=call_id,
                outcomes=scenario.carrier.outcomes,
                ring_s=scenario.carrier.ring_s,
            )
        )
        if scripted is None:
            errors.append("the simulated carrier could not be scripted (is the sip-bridge up?)")
    if rig is None:
        session = new_session(call, chat_model)
    else:
        session = new_session(
            call,
            chat_model,
            recognizer=recogniser,
            voice=voice,
            voice_activity=voice_activity(),
        )
        rig.attach(session)
    transcript.attach(session)
    # The call's span is current while it plays, so its requests and events carry the
    # trace to the services (``voice.tracing``).
    try:
        with trace.use_span(call_span(info), end_on_exit=True):
            if rig is None:
                await _play(scenario, call, session, transcript, observer, probe, errors)
            else:
                await _play_audio(scenario, call, session, rig, observer, errors)
    finally:
        if rig is not None:
            await rig.close()
    if rig is not None:
        for said, when, note in rig.never_turns(t0):
            transcript.unheard_at(said, when, note)
    legs = await _legs_after(call, observer.events)
    return reports.build(
        scenario=scenario.name,
        call_id=call_id,
        outcome=str(call.state.outcome),
        consent=str(call.state.consent) if call.state.consent else None,
        agents=transcript.agents,
        lines=transcript.lines,
        events=observer.events,
        timeline=call.ports.gate.timeline,
        expect=scenario.expect,
        errors=errors,
        legs=legs,
        audio=rig.view() if rig is not None else None,
    )


async def _play(
    scenario: Scenario,
    call: Call,
    session: AgentSession[Call],
    transcript: Transcript,
    observer: CallObserver,
    probe: Probe,
    errors: list[str],
) -> None:
    """The call itself: greeting, the scripted turns, teardown."""
    call_id = call.call_id
    loop = asyncio.get_running_loop()
    on_hold = asyncio.create_task(
        _caller_on_hold(scenario.hold or Hold(), session, call, observer, transcript)
    )
    try:
        started = loop.time()
        await begin(call)
        first = await session.start(Roster(call).triage(), capture_run=True, record=False)
        await first
        if probe.on_turn is not None:
            probe.on_turn(0, loop.time() - started)
        await _settle(session, transcript)
        for number, turn in enumerate(scenario.lines, start=1):
            if call.state.ended or call.caller_gone:
                break
            if probe.before_turn is not None:
                await probe.before_turn()
            started = loop.time()
            await session.run(user_input=turn)
            if probe.on_turn is not None:
                probe.on_turn(number, loop.time() - started)
            await _settle(session, transcript)
    except Exception as exc:
        log.exception("A scenario turn failed.", extra={"call_id": call_id})
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        # With a probe's own events there is no call.ended of ours to wait for.
        await _wind_down(on_hold, call, session, observer, wait_for_end=probe.events is None)


async def _play_audio(
    scenario: Scenario,
    call: Call,
    session: AgentSession[Call],
    rig: AudioRig,
    observer: CallObserver,
    errors: list[str],
) -> None:
    """The call in audio mode: the session hears the caller's microphone from the start."""
    on_hold = asyncio.create_task(
        audio_play.caller_on_hold(scenario.hold or Hold(), call, rig, observer)
    )
    try:
        await begin(call)
        await session.start(Roster(call).triage(), record=False)
        await audio_play.play_turns(scenario, call, session, rig, observer)
    except Exception as exc:
        log.exception("An audio scenario turn failed.", extra={"call_id": call.call_id})
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if rig.recogniser.unmatched:
            log.info(
                "Uploads with no caller line in them.",
                extra={"count": len(rig.recogniser.unmatched)},
            )
        await _wind_down(on_hold, call, session, observer, wait_for_end=True)


async def _wind_down(
    on_hold: asyncio.Task[None],
    call: Call,
    session: AgentSession[Call],
    observer: CallObserver,
    *,
    wait_for_end: bool,
) -> None:
    """End a played call the same way in text and audio mode: stop the hold watcher, end
    the call and its session, then collect the events that trail the end."""
    on_hold.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await on_hold
    await call.finish()
    await session.aclose()
    if wait_for_end:  # our own call.ended closes the call's events
        await observer.wait_for("call.ended", TRAILING_EVENTS_S)
    await asyncio.sleep(QUIET_S)
    await observer.close()


async def _caller_on_hold(
    hold: Hold,
    session: AgentSession[Call],
    call: Call,
    observer: CallObserver,
    transcript: Transcript,
) -> None:
    """The caller's part while on hold: say ``hold.says`` and hang up, on their events."""
    if hold.says and await observer.wait_for(hold.at, SETTLE_TIMEOUT_S):
        for text in hold.says:
            await caller_speaks(session, call, text, transcript)
    if hold.hang_up_at and await observer.wait_for(hold.hang_up_at, SETTLE_TIMEOUT_S):
        log.info("The scripted caller hangs up.", extra={"call_id": call.call_id})
        call.caller_left()


async def caller_speaks(
    session: AgentSession[Call], call: Call, text: str, transcript: Transcript
) -> None:
    """Words the caller says between turns, delivered as a live call gets them: not at all
    while they are on hold (in a room the worker's audio input is off then, and text mode
    has no audio input, so the hold's ``on_hold`` stands for it), else as a turn that
    interrupts what is being said (refused while an uninterruptible line plays)."""
    if call.state.on_hold:
        transcript.unheard(text)
        return
    try:
        await session.interrupt()
        # Refused too when the agent in charge began handing over while the interrupt
        # was awaited (a transfer failing into the callback offer): text mode has no
        # audio for the next agent to hear, so the words go unheard.
        session.generate_reply(user_input=text)
    except RuntimeError:
        transcript.unheard(text)


async def _legs_after(call: Call, events: list[ObservedEvent]) -> TransferLegs | None:
    """What the bridge still holds for the call, once it finished its transfers' bookkeeping
    (only for calls that made a transfer)."""
    if not any(e.kind.startswith("transfer.") for e in events):
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEGS_TIMEOUT_S
    while True:
        legs = await call.ports.transfer.legs(call.call_id)
        if legs is None or not legs.in_progress or loop.time() >= deadline:
            return legs
        await asyncio.sleep(QUIET_S)  # Polling with a bound: the bridge has no "done" event.


async def _settle(session: AgentSession[Call], transcript: Transcript) -> None:
    """Wait until the agents have finished answering the last turn.

    ``session.run`` can return a moment before work it started is over (a TaskGroup
    hands its result to the waiting tool ~10 ms after the run completes), so a turn is
    over only when nothing new has been said for ``QUIET_S``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    seen = -1
    while loop.time() < deadline and seen != len(transcript.lines):
        seen = len(transcript.lines)
        await ready_for_input(session, deadline)
        await asyncio.sleep(QUIET_S)
    await ready_for_input(session, deadline)
    if loop.time() >= deadline:
        log.warning("A turn did not settle in time.")


async def ready_for_input(session: AgentSession[Call], deadline: float) -> None:
    """Wait until the active agent is idle and not in the middle of a handoff: a turn sent
    while an activity is pausing would be refused by the session."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            activity = await asyncio.wait_for(session.wait_for_idle(), deadline - loop.time())
        except (ActivityClosedError, RuntimeError, TimeoutError):
            return
        if not activity.scheduling_paused:
            return
        await asyncio.sleep(0.01)
