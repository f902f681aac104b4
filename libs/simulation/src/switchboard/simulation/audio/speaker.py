"""The caller's loudspeaker: plays the agents' audio on the audio clock and keeps the facts.

Like a room's audio track it plays each segment (everything captured between two flushes)
in real time on the clock, can be paused and resumed (the session pauses it when the caller
starts talking over the agent), and stops at once on ``clear_buffer`` (an interruption). For
every segment it records how much audio it got, how much of it played, the pauses, and
whether it was cut. ``SpokenText`` sits in front of the session's transcript synchroniser
and keeps each reply's full text, as generated, before any of it is played.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from livekit import rtc
from livekit.agents.voice.io import AudioOutput, AudioOutputCapabilities, TextOutput

from switchboard.simulation.audio.clock import AudioClock

END_EPSILON_S = 1e-6


@dataclass(slots=True)
class Pause:
    at_s: float
    """Audio seconds into the segment's playback when it paused."""
    resumed: bool = False


@dataclass(slots=True)
class Played:
    """One segment of agent speech as the caller's speaker played it."""

    number: int
    started_s: float
    """When it started playing, on the audio clock."""
    pushed_s: float = 0.0
    played_s: float = 0.0
    flushed: bool = False
    interrupted: bool = False
    ended_s: float | None = None
    pauses: list[Pause] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.ended_s is not None

    @property
    def resumed(self) -> bool:
        return any(p.resumed for p in self.pauses)


class CallerSpeaker(AudioOutput):
    def __init__(self, clock: AudioClock) -> None:
        super().__init__(label="simulated caller", capabilities=AudioOutputCapabilities(pause=True))
        self._clock = clock
        self.segments: list[Played] = []
        self._current: Played | None = None
        self._discarding = False
        """After a cut, the rest of that segment's frames are dropped until its flush."""
        self._paused = False
        self._wake = asyncio.Event()
        self._player: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()
        """Set whenever a segment starts, pauses, resumes or ends (for waiting callers)."""

    @property
    def current(self) -> Played | None:
        return self._current

    def position(self) -> float | None:
        """Seconds played of the segment playing now (None when nothing plays)."""
        if self._current is None:
            return None
        self._advance(self._current)
        return self._current.played_s

    @property
    def idle(self) -> bool:
        return self._current is None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._discarding:
            return
        if self._current is None:
            self._current = Played(number=len(self.segments) + 1, started_s=self._clock.now())
            self.segments.append(self._current)
            self._player = asyncio.create_task(self._play(self._current))
        self._current.pushed_s += frame.duration
        self._wake.set()

    def flush(self) -> None:
        super().flush()
        self._discarding = False
        if self._current is not None:
            self._current.flushed = True
            self._wake.set()

    def clear_buffer(self) -> None:
        segment = self._current
        if segment is None:
            return
        self._advance(segment)
        self._discarding = not segment.flushed
        self._finish(segment, interrupted=True)

    def pause(self) -> None:
        if self._paused:
            return
        if self._current is not None:
            self._advance(self._current)
            self._current.pauses.append(Pause(at_s=self._current.played_s))
        self._paused = True
        self._wake.set()
        self._notify()

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._current is not None and self._current.pauses:
            self._current.pauses[-1].resumed = True
        self._last = self._clock.now()
        self._wake.set()
        self._notify()

    async def aclose(self) -> None:
        if self._current is not None:
            self._finish(self._current, interrupted=True)
        if self._player is not None:
            await asyncio.gather(self._player, return_exceptions=True)

    # --- playing ----------------------------------------------------------------------

    _last: float = 0.0

    def _advance(self, segment: Played) -> None:
        now = self._clock.now()
        if not self._paused:
            segment.played_s = min(segment.pushed_s, segment.played_s + now - self._last)
        self._last = now

    async def _play(self, segment: Played) -> None:
        self._last = self._clock.now()
        self.on_playback_started(created_at=time.time())
        self._notify()
        while not segment.done:
            self._advance(segment)
            left = segment.pushed_s - segment.played_s
            if segment.flushed and left <= END_EPSILON_S:
                self._finish(segment, interrupted=False)
                return
            self._wake.clear()
            timeout = None if self._paused or left <= END_EPSILON_S else self._clock.wall(left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _finish(self, segment: Played, *, interrupted: bool) -> None:
        if segment.done:
            return
        segment.interrupted = interrupted
        segment.ended_s = self._clock.now()
        self._current = None
        self._wake.set()
        self.on_playback_finished(playback_position=segment.played_s, interrupted=interrupted)
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class SpokenText(TextOutput):
    """In front of the transcript synchroniser: each reply's full text, as generated."""

    def __init__(self, next_in_chain: TextOutput) -> None:
        super().__init__(label="simulated caller", next_in_chain=next_in_chain)
        self.replies: list[str] = []
        self.latest = ""
        """The text of the latest reply (a reply's text is complete before it has played)."""
        self._open = False

    async def capture_text(self, text: str) -> None:
        if not self._open:
            self._open, self.latest = True, ""
        self.latest += text
        assert self.next_in_chain is not None
        await self.next_in_chain.capture_text(text)

    def flush(self) -> None:
        if self._open and self.latest.strip():
            self.replies.append(self.latest.strip())
        self._open = False
        assert self.next_in_chain is not None
        self.next_in_chain.flush()


class HeardText(TextOutput):
    """Behind the synchroniser: the words of the reply playing now, as they are played."""

    def __init__(self) -> None:
        super().__init__(label="simulated caller", next_in_chain=None)
        self.current = ""
        self.changed = asyncio.Event()

    async def capture_text(self, text: str) -> None:
        self.current += text
        self.changed.set()
        self.changed = asyncio.Event()

    def flush(self) -> None:
        self.current = ""
