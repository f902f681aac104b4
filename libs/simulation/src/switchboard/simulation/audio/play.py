"""The caller's side of an audio-mode call: each turn said into the microphone at its moment.

A plain turn is said once the agents have finished (nothing playing, nothing being thought
about, for ``QUIET_S`` of audio and ``QUIET_WALL_S`` of wall-clock time); a timed turn at
its moment: while the agent says a given fragment, or on a bus event (on hold). After a
turn the caller waits until the session made a turn of it, or until the words cannot make
one any more (the bound covers endpointing and the recogniser's answer). ``[hold]`` lines
are said into the microphone too, and the caller hangs up on their event. Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit.agents import AgentSession

from switchboard.simulation.audio.mic import Said
from switchboard.simulation.audio.rig import SECONDS_PER_CHAR, AudioRig
from switchboard.simulation.observer import CallObserver
from switchboard.simulation.scenario import Hold, Scenario, Turn
from switchboard.voice.call import Call

log = logging.getLogger(__name__)

QUIET_S = 1.5
"""Audio seconds of nothing happening after which the agents count as finished..."""
QUIET_WALL_S = 0.4
"""...and at least this much wall-clock time: the gap between two replies of one agent is
the event loop's, not sped up, and grows on a busy machine."""
SETTLE_TIMEOUT_S = 60.0
"""Wall-clock bound of one wait for the agents to finish (a transfer on hold included)."""
MOMENT_TIMEOUT_S = 30.0
"""Wall-clock bound of the wait for a timed turn's moment."""
TURN_TIMEOUT_S = 4.0
"""Audio seconds after the caller stops within which their words become a turn, if they
ever do (endpointing, then the recogniser's answer)..."""
TURN_TIMEOUT_WALL_S = 2.0
"""...and at least this much wall-clock time (HTTP round trips are not sped up)."""
POLL_S = 0.02


async def play_turns(
    scenario: Scenario,
    call: Call,
    session: AgentSession[Any],
    rig: AudioRig,
    observer: CallObserver,
) -> None:
    """The scripted turns, then the agents' last words."""
    for turn in scenario.turns:
        if call.state.ended or call.caller_gone:
            break
        step = turn if isinstance(turn, Turn) else Turn(says=turn)
        await _turn(step, call, session, rig, observer)
    await settle(session, rig)


async def _turn(
    turn: Turn, call: Call, session: AgentSession[Any], rig: AudioRig, observer: CallObserver
) -> None:
    if turn.at_event is not None:
        if not await observer.wait_for(turn.at_event, MOMENT_TIMEOUT_S):
            log.warning("A timed turn's event never came; it is said now.")
    elif turn.after_agent_says is not None:
        if not await _agent_says(rig, turn.after_agent_says.lower()):
            log.warning("The agent never said a timed turn's fragment; it is said now.")
    else:
        await settle(session, rig)
    await rig.clock.sleep(turn.delay_s)
    if call.state.ended or call.caller_gone:
        return  # nobody is listening any more (transferred, or the caller hung up)
    turns_before = rig.user_turns
    kind = "backchannel" if turn.backchannel else ("on_hold" if call.state.on_hold else "turn")
    said = rig.say(turn.says, kind)
    await said.ended.wait()
    if not turn.backchannel:
        await _became_a_turn(rig, said, turns_before)


async def _became_a_turn(rig: AudioRig, said: Said, turns_before: int) -> None:
    bound = max(rig.clock.wall(TURN_TIMEOUT_S), TURN_TIMEOUT_WALL_S)
    if not await rig.wait_turn_after(turns_before, bound):
        log.info("A caller line made no turn.")


async def _agent_says(rig: AudioRig, fragment: str) -> bool:
    """Wait until the agent's speaker has played ``fragment`` of the reply playing now.

    Where a fragment falls in the audio follows from the synthesiser stand-in's fixed
    speaking rate; LiveKit's transcript synchroniser paces its words on the wall clock, so
    at a speed-up it lags the audio and cannot tell."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MOMENT_TIMEOUT_S
    while loop.time() < deadline:
        text = rig.spoken_now().lower()
        at = text.find(fragment)
        playing = rig.speaker.position()
        if at >= 0 and playing is not None and playing >= (at + len(fragment)) * SECONDS_PER_CHAR:
            return True
        await asyncio.sleep(POLL_S)  # Polling with a bound: playback is a position, not an event.
    return False


async def settle(session: AgentSession[Any], rig: AudioRig) -> None:
    """Wait until nothing plays and no agent is thinking or speaking, for ``QUIET_S``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    quiet_since: tuple[float, float] | None = None
    while loop.time() < deadline:
        busy = (
            not rig.speaker.idle
            or session.agent_state in ("thinking", "speaking")
            or session.user_state == "speaking"
            or session.current_speech is not None
        )
        now = (rig.clock.now(), loop.time())
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now[0] - quiet_since[0] >= QUIET_S and now[1] - quiet_since[1] >= QUIET_WALL_S:
            return
        await asyncio.sleep(POLL_S)  # Polling with a bound: "idle" is a state, not an event.
    log.warning("The agents did not finish in time.")


async def caller_on_hold(hold: Hold, call: Call, rig: AudioRig, observer: CallObserver) -> None:
    """``[hold]``: the lines said into the microphone on their event, then the hang-up."""
    if hold.says and await observer.wait_for(hold.at, MOMENT_TIMEOUT_S):
        for text in hold.says:
            said = rig.say(text, "on_hold")
            await said.ended.wait()
    if hold.hang_up_at and await observer.wait_for(hold.hang_up_at, MOMENT_TIMEOUT_S):
        log.info("The scripted caller hangs up.", extra={"call_id": call.call_id})
        rig.mic.close()  # a caller who hung up says nothing more
        call.caller_left()
