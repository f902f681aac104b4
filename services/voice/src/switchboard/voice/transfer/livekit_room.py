"""The LiveKit side of a warm transfer: the consult room and hold music (production only).

Kept thin on purpose, because no test here has a LiveKit server to run it against: each
method is one or two SDK calls, and every decision (when to brief, what a hang-up means,
what the caller hears) is in ``flow.py``, ``briefing.py`` and the briefing agent, which
the simulation runs with the same code through scripted humans. This module only joins
the consult room with an agent token, links the briefing session to the dialled human's
participant, reports their leaving, and plays hold audio into the caller's room, as
livekit-agents' ``WarmTransferTask`` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livekit import api, rtc
from livekit.agents import Agent
from livekit.agents.voice import room_io
from livekit.agents.voice.background_audio import (
    AudioConfig,
    BackgroundAudioPlayer,
    BuiltinAudioClip,
    PlayHandle,
)

from switchboard.voice.providers import Models
from switchboard.voice.state import CallInfo
from switchboard.voice.transfer.consult import briefing_session, consult_room_name
from switchboard.voice.transfer.hold import HoldAudio, NoHoldAudio

log = logging.getLogger(__name__)

BRIEFING_IDENTITY = "switchboard-briefing"
HOLD_VOLUME = 0.8
NO_HOLD_AUDIO = "none"


def hold_audio(room: rtc.Room, setting: str) -> HoldAudio:
    """``SB_HOLD_AUDIO``: empty for the built-in hold music, a file, or ``none``."""
    if setting.strip().lower() == NO_HOLD_AUDIO:
        return NoHoldAudio()
    if setting and not Path(setting).is_file():
        log.warning("SB_HOLD_AUDIO is not a file; playing the built-in hold music.")
        setting = ""
    return RoomHoldAudio(room, setting or BuiltinAudioClip.HOLD_MUSIC)


class RoomHoldAudio:
    """Hold audio played into the caller's room, on a loop."""

    def __init__(self, room: rtc.Room, source: str | BuiltinAudioClip) -> None:
        self._room = room
        self._source = source
        self._player: BackgroundAudioPlayer | None = None
        self._playing: PlayHandle | None = None

    async def start(self) -> None:
        self._player = BackgroundAudioPlayer()
        await self._player.start(room=self._room)
        self._playing = self._player.play(AudioConfig(self._source, volume=HOLD_VOLUME), loop=True)

    async def stop(self) -> None:
        if self._playing is not None:
            self._playing.stop()
            self._playing = None
        if self._player is not None:
            await self._player.aclose()
            self._player = None


class LiveKitConsultRooms:
    """Consult rooms on the LiveKit server the worker runs against."""

    def __init__(self, models: Models, url: str | None = None) -> None:
        self._models = models
        self._url = url or os.environ.get("LIVEKIT_URL", "")

    def open(self, info: CallInfo, transfer_id: str) -> LiveKitConsultLine:
        return LiveKitConsultLine(
            consult_room_name(info.room, transfer_id), self._models, self._url
        )


class LiveKitConsultLine:
    """The briefing session in one consult room, linked to whichever human answered."""

    def __init__(self, room: str, models: Models, url: str) -> None:
        self.room = room
        self._url = url
        self._rtc = rtc.Room()
        self._session = briefing_session(
            models.chat_model,
            recognizer=models.recognizer,
            voice=models.voice,
            voice_activity=models.voice_activity,
        )
        self._watching: Callable[[rtc.RemoteParticipant], None] | None = None

    async def start(self, agent: Agent) -> None:
        token = (
            api.AccessToken()  # LIVEKIT_API_KEY and LIVEKIT_API_SECRET, as the worker has
            .with_identity(BRIEFING_IDENTITY)
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=self.room))
            .to_jwt()
        )
        await self._rtc.connect(self._url, token)
        await self._session.start(
            agent,
            room=self._rtc,
            room_options=room_io.RoomOptions(
                close_on_disconnect=False, delete_room_on_close=False, text_input=False
            ),
            record=False,  # The consult leg is not recorded (the bridge deletes the room).
        )

    async def human_answered(
        self, attempt: int, identity: str | None, agent: Agent, hung_up: Callable[[], None]
    ) -> None:
        self._unwatch()
        if identity is not None:
            self._session.room_io.set_participant(identity)

            def on_left(participant: rtc.RemoteParticipant, /, *_: Any) -> None:
                if participant.identity == identity:
                    hung_up()

            self._rtc.on("participant_disconnected", on_left)
            self._watching = on_left
        self._session.update_agent(agent)

    async def human_gone(self, attempt: int) -> None:
        self._unwatch()
        self._session.room_io.unset_participant()

    async def close(self) -> None:
        self._unwatch()
        await self._session.aclose()
        await self._rtc.disconnect()

    def _unwatch(self) -> None:
        if self._watching is not None:
            self._rtc.off("participant_disconnected", self._watching)
            self._watching = None
