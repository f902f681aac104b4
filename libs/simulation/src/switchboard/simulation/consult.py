"""Scripted humans in the consult room: the text-mode ``ConsultRooms`` port.

Production joins a LiveKit consult room and hears the dialled human; here the briefing
session is a text session and the humans are the scenario's ``[[humans]]``, one per
answer in order, each line one turn to the briefing agent (``session.run``). The briefing
agent, the coordination and the bridge are the production code; only the humans' voices
are scripted. A human with no script says "Hello?" and takes the call, except on an
attempt the carrier script makes a ``voicemail``: then a voicemail greeting plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from livekit.agents import Agent, AgentSession, llm
from livekit.agents.voice.agent_activity import ActivityClosedError

from switchboard.contracts.simulation import SimOutcome
from switchboard.simulation.scenario import Human
from switchboard.simulation.transcript import ConsultTranscript, Transcript
from switchboard.voice.agents.briefing import BriefingAgent
from switchboard.voice.state import CallInfo
from switchboard.voice.transfer.consult import briefing_session, consult_room_name

log = logging.getLogger(__name__)

ACCEPTING = Human(says=["Hello?", "Yes, put them through."])
VOICEMAIL = Human(
    says=[
        "Hi, you've reached the team. We can't take your call right now; "
        "please leave a message after the tone."
    ]
)
TURN_TIMEOUT_S = 30.0
CLOSE_WAIT_S = 5.0


class ScriptedConsultRooms:
    """Consult rooms whose humans follow the scenario."""

    def __init__(
        self,
        chat_model: llm.LLM[Any],
        transcript: Transcript,
        humans: Sequence[Human] = (),
        carrier: Sequence[SimOutcome] = (),
    ) -> None:
        self._chat_model = chat_model
        self._transcript = transcript
        self._humans = deque(humans)
        self._carrier = list(carrier)
        self.lines: list[ScriptedConsultLine] = []

    def open(self, info: CallInfo, transfer_id: str) -> ScriptedConsultLine:
        line = ScriptedConsultLine(self, consult_room_name(info.room, transfer_id))
        self.lines.append(line)
        return line

    def next_human(self, attempt: int) -> Human:
        """Who answers ``attempt``: the next scripted human, else the default for it."""
        if self._humans:
            return self._humans.popleft()
        outcome = self._carrier[attempt - 1] if attempt <= len(self._carrier) else None
        return VOICEMAIL if outcome is SimOutcome.VOICEMAIL else ACCEPTING

    def session_for(self) -> AgentSession[None]:
        return briefing_session(self._chat_model)

    @property
    def transcript(self) -> Transcript:
        return self._transcript


class ScriptedConsultLine:
    """One consult room: a text briefing session, and a player for the human on the line."""

    def __init__(self, rooms: ScriptedConsultRooms, room: str) -> None:
        self.room = room
        self._rooms = rooms
        self._session = rooms.session_for()
        self._lines = ConsultTranscript(rooms.transcript)
        self._lines.attach(self._session)
        self._player: asyncio.Task[None] | None = None

    async def start(self, agent: Agent) -> None:
        await self._session.start(agent, record=False)

    async def human_answered(
        self, attempt: int, identity: str | None, agent: Agent, hung_up: Callable[[], None]
    ) -> None:
        await self._stop_player()
        self._lines.attempt = attempt
        self._session.update_agent(agent)
        human = self._rooms.next_human(attempt)
        self._player = asyncio.create_task(self._play(human, agent, hung_up))

    async def human_gone(self, attempt: int) -> None:
        await self._stop_player()

    async def close(self) -> None:
        if self._player is not None:
            # A human who just decided finishes their turn; then the room goes.
            await asyncio.wait({self._player}, timeout=CLOSE_WAIT_S)
        await self._stop_player()
        await self._session.aclose()

    async def _play(self, human: Human, agent: Agent, hung_up: Callable[[], None]) -> None:
        await self._until_active(agent)
        for text in human.says:
            if _decided(agent):
                return
            try:
                await self._session.run(user_input=text)
            except (ActivityClosedError, RuntimeError):
                log.info("The briefing session ended during a human's turn.")
                return
        if human.hangs_up and not _decided(agent):
            hung_up()

    async def _until_active(self, agent: Agent) -> None:
        """Wait (bounded) until the session talks with ``agent`` and takes input."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TURN_TIMEOUT_S
        while loop.time() < deadline:
            if self._session.current_agent is agent:
                with contextlib.suppress(ActivityClosedError, RuntimeError, TimeoutError):
                    activity = await asyncio.wait_for(
                        self._session.wait_for_idle(), deadline - loop.time()
                    )
                    if not activity.scheduling_paused:
                        return
            # The agent switch is scheduled by the session; there is no event for it.
            await asyncio.sleep(0.01)

    async def _stop_player(self) -> None:
        if self._player is not None and not self._player.done():
            self._player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._player
        self._player = None


def _decided(agent: Agent) -> bool:
    return isinstance(agent, BriefingAgent) and agent.verdict is not None
