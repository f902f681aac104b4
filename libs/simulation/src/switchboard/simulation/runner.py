"""Text-mode runner: plays one scenario through the real agent graph over the real bus.

The session has no room, audio or turn detector and the model is the one ``SB_BRAIN``
names (the rules brain by default); each scripted caller turn is one ``session.run``.
Everything else is production code: the same agents, the same clients (the back office
too: the CRM adapter over NATS, the demo CRM in ``make demo``) and the same services on
the other end of NATS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.agent_activity import ActivityClosedError
from opentelemetry import trace

from switchboard.contracts.simulation import ScriptCarrier
from switchboard.simulation import report as reports
from switchboard.simulation.observer import CallObserver, ObservedEvent
from switchboard.simulation.scenario import Scenario
from switchboard.simulation.transcript import Line, Transcript
from switchboard.voice.agents.roster import Roster
from switchboard.voice.backoffice import BackOffice
from switchboard.voice.brain import RulesBrain
from switchboard.voice.call import Call
from switchboard.voice.clients.events import CallEventSink
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
) -> reports.Report:
    """Play ``scenario`` as one call. ``back_office`` defaults to the production one (the
    CRM adapter over NATS) and ``chat_model`` to the rules brain; pass
    ``providers.language_model(...)`` to run the call through the LLM the settings name."""
    live = live or Live()
    probe = probe or Probe()
    call_id = scenario.run_call_id()
    observer = await CallObserver(live.on_event).start(bus.nc, call_id)
    info = CallInfo(
        call_id=call_id,
        room=f"text-{call_id}",
        caller_identity=f"caller-{call_id}",
        caller_number=scenario.caller_number,
        trunk=scenario.trunk,
        language=scenario.language,
    )
    call = new_call(
        bus,
        settings,
        info,
        TimelineRecorder(),
        back_office,
        events=probe.events,
    )
    transcript = Transcript(live.on_line)
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
    session = new_session(call, chat_model or RulesBrain())
    transcript.attach(session)
    # The call's span is current while it plays, so its requests and events carry the
    # trace to the services (``voice.tracing``).
    with trace.use_span(call_span(info), end_on_exit=True):
        await _play(scenario, call, session, transcript, observer, probe, errors)
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
    try:
        started = loop.time()
        await begin(call)
        first = await session.start(Roster(call).triage(), capture_run=True, record=False)
        await first
        if probe.on_turn is not None:
            probe.on_turn(0, loop.time() - started)
        await _settle(session, transcript)
        for number, turn in enumerate(scenario.turns, start=1):
            if call.state.ended:
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
        await call.finish()
        await session.aclose()
        if probe.events is None:  # our own call.ended closes the call's events
            await observer.wait_for("call.ended", TRAILING_EVENTS_S)
        await asyncio.sleep(QUIET_S)
        await observer.close()


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
