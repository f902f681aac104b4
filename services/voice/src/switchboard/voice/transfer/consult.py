"""The consult room port: where a warm transfer's briefing session runs and how the humans
who answer reach it.

The voice worker opens one consult room per transfer, before the bridge dials anyone into
it, and starts the briefing session there. Production (``livekit_consult.py``) joins a
LiveKit room named ``<room>-consult-<token>`` and hears the dialled human through it; the
simulation plays scripted humans into a text session. Both run the same briefing agent
(``agents/briefing.py``) and the same coordination (``briefing.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Protocol

from livekit.agents import Agent, AgentSession, llm, stt, tts, vad
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice.turn import TurnHandlingOptions

from switchboard.voice.state import CallInfo


def consult_room_name(room: str, transfer_id: str) -> str:
    """``<room>-consult-<token>``, the only shape of room the bridge dials humans into."""
    token = hashlib.blake2s(transfer_id.encode(), digest_size=4).hexdigest()
    return f"{room}-consult-{token}"


class ConsultLine(Protocol):
    """One consult room with its briefing session."""

    room: str
    """The consult room's name (sent to the bridge in ``PlaceTransfer``)."""

    async def start(self, agent: Agent) -> None:
        """Join the consult room and start the briefing session with ``agent`` (which says
        nothing until a human answers)."""
        ...

    async def human_answered(
        self, attempt: int, identity: str | None, agent: Agent, hung_up: Callable[[], None]
    ) -> None:
        """The human of ``attempt`` is in the room: the session talks to them with a fresh
        ``agent``; ``hung_up`` is called if they leave before deciding."""
        ...

    async def human_gone(self, attempt: int) -> None:
        """The bridge ended ``attempt`` (declined, hung up): stop listening to that human."""
        ...

    async def close(self) -> None:
        """The transfer is over: the briefing session leaves the consult room."""
        ...


class ConsultRooms(Protocol):
    """Opens consult rooms (production: LiveKit; simulation: scripted humans)."""

    def open(self, info: CallInfo, transfer_id: str) -> ConsultLine: ...


def briefing_session(
    chat_model: llm.LLM[Any],
    *,
    recognizer: NotGivenOr[stt.STT[Any]] = NOT_GIVEN,
    voice: NotGivenOr[tts.TTS[Any]] = NOT_GIVEN,
    voice_activity: vad.VAD | None = None,
) -> AgentSession[None]:
    """The briefing session: the call's models, no userdata (it knows only what the briefing
    agent is given). Without voice activity detection it is text-only, like the call's."""
    if voice_activity is None:
        return AgentSession[None](
            llm=chat_model,
            stt=recognizer,
            tts=voice,
            vad=None,
            turn_handling=TurnHandlingOptions(turn_detection=None),
        )
    return AgentSession[None](llm=chat_model, stt=recognizer, tts=voice, vad=voice_activity)
