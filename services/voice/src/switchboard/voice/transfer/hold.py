"""The caller on hold while a person is found: input off, hold audio, a reminder now and then.

Hold begins before the transfer line is spoken, so from then on nothing the caller says
reaches an agent (the session's audio input is off, and the agents ignore text input while
``CallState.on_hold``): a caller who says "ok, thanks" while waiting cannot stop the
transfer. What they hear is the hold audio (``HoldAudio``; none in text mode), progress
lines from the transfer (queued, trying another colleague) and, when nothing else was
said for ``SB_HOLD_REMINDER_S``, a reminder that we are still trying. Every line is
spoken uninterruptibly and one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from livekit.agents import AgentSession

from switchboard.voice.agents.speech import speak
from switchboard.voice.state import CallState

log = logging.getLogger(__name__)

STILL_TRYING = "I'm still trying to reach someone for you. Thank you for holding."


class HoldAudio(Protocol):
    """What plays to the caller while they wait (production: hold music in the room)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class NoHoldAudio:
    """Text mode and ``SB_HOLD_AUDIO=none``: silence between the lines."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class CallerHold:
    """One hold: ``begin`` (input off), ``play`` (audio and reminders), ``say``, ``end``."""

    def __init__(
        self, session: AgentSession[Any], state: CallState, audio: HoldAudio, reminder_s: float
    ) -> None:
        self._session = session
        self._state = state
        self._audio = audio
        self._reminder_s = reminder_s
        self._lock = asyncio.Lock()
        self._spoke = asyncio.Event()
        self._reminders: asyncio.Task[None] | None = None
        self._input_was_on = True
        self._held = False
        self._playing = False
        self.reminder = STILL_TRYING
        """What the next reminder says (the transfer updates it, e.g. with a place in line)."""

    async def begin(self) -> None:
        """The caller's input goes off: from the transfer line on, nothing they say acts."""
        if self._held:
            return
        self._held = True
        self._state.on_hold = True
        if self._session.input.audio is not None:  # A room's microphone; none in text mode.
            self._input_was_on = self._session.input.audio_enabled
            self._session.input.set_audio_enabled(False)

    async def play(self) -> None:
        """Hold audio on, and a reminder whenever the caller heard nothing for a while."""
        await self.begin()
        if self._playing:
            return
        self._playing = True
        try:
            await self._audio.start()
        except Exception:
            log.warning("Hold audio could not start.", exc_info=True)
        self._reminders = asyncio.create_task(self._remind())

    async def say(self, text: str) -> None:
        """A line for the caller on hold, after any line being spoken."""
        async with self._lock:
            await speak(self._session, text, interruptible=False)
            self._spoke.set()

    async def end(self) -> None:
        """Off hold: reminders and audio stop, the caller's input comes back."""
        if self._reminders is not None:
            self._reminders.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reminders
            self._reminders = None
        if self._playing:
            self._playing = False
            try:
                await self._audio.stop()
            except Exception:
                log.warning("Hold audio could not stop.", exc_info=True)
        if self._held:
            self._held = False
            self._state.on_hold = False
            if self._session.input.audio is not None:
                self._session.input.set_audio_enabled(self._input_was_on)

    async def _remind(self) -> None:
        while True:
            self._spoke.clear()
            try:
                # Any line said counts as news; the reminder is for long silences.
                await asyncio.wait_for(self._spoke.wait(), self._reminder_s)
            except TimeoutError:
                await self.say(self.reminder)
