"""The caller's microphone: 20 ms frames of 16 kHz audio on the audio clock.

Silence when the caller is quiet, their utterances when they speak. A frame is handed over
once its 20 ms have passed on the clock; a session that reads late gets the frames it
missed at once, so the audio it hears never depends on how busy the machine is. While the
session has the input off (the caller on hold), nothing is read and what the caller says
then is lost, as a detached room track loses it: when the input comes back, it resumes at
the present moment.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from livekit import rtc
from livekit.agents.voice.io import AudioInput

from switchboard.simulation.audio.clock import AudioClock
from switchboard.simulation.audio.voices import SAMPLE_RATE

FRAME_SAMPLES = SAMPLE_RATE // 50


@dataclass(slots=True)
class Said:
    """One utterance of the caller, timed in audio seconds."""

    text: str
    kind: str
    """``turn``, ``backchannel`` or ``on_hold``."""
    start_s: float
    pcm: bytes = field(repr=False)
    delivered_samples: int = 0
    """How much of it the session read (none while its input was off)."""
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def end_s(self) -> float:
        return self.start_s + self.samples / SAMPLE_RATE

    @property
    def delivered_s(self) -> float:
        return self.delivered_samples / SAMPLE_RATE


class CallerMic(AudioInput):
    def __init__(self, clock: AudioClock) -> None:
        super().__init__(label="simulated caller")
        self._clock = clock
        self._next = 0
        """The first sample of the next frame, in samples since the clock started."""
        self.said: list[Said] = []
        self._attached = asyncio.Event()
        self._attached.set()
        self._closed = False

    def say(self, text: str, pcm: bytes, kind: str = "turn") -> Said:
        """Start saying ``pcm`` now (or when the previous utterance ends)."""
        start = max([self._clock.now(), *(s.end_s for s in self.said)])
        said = Said(text=text, kind=kind, start_s=start, pcm=pcm)
        self.said.append(said)
        asyncio.get_running_loop().call_later(
            max(0.0, self._clock.wall(said.end_s - self._clock.now())), said.ended.set
        )
        return said

    def close(self) -> None:
        self._closed = True
        self._attached.set()

    def on_attached(self) -> None:
        if not self._attached.is_set():
            # Back on: what was said meanwhile was never heard.
            self._next = max(self._next, _frame_start(self._clock.now()))
            self._attached.set()

    def on_detached(self) -> None:
        self._attached.clear()

    async def __anext__(self) -> rtc.AudioFrame:
        await self._attached.wait()
        if self._closed:
            raise StopAsyncIteration
        start = self._next
        await self._clock.sleep_until((start + FRAME_SAMPLES) / SAMPLE_RATE)
        if not self._attached.is_set():  # switched off while this frame was being recorded
            return await self.__anext__()
        self._next = start + FRAME_SAMPLES
        return rtc.AudioFrame(
            data=self._mix(start),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            samples_per_channel=FRAME_SAMPLES,
        )

    def _mix(self, start: int) -> bytes:
        out = bytearray(FRAME_SAMPLES * 2)
        end = start + FRAME_SAMPLES
        for said in self.said:
            first = round(said.start_s * SAMPLE_RATE)
            lo, hi = max(start, first), min(end, first + said.samples)
            if lo >= hi:
                continue
            out[(lo - start) * 2 : (hi - start) * 2] = said.pcm[(lo - first) * 2 : (hi - first) * 2]
            said.delivered_samples += hi - lo
        return bytes(out)


def _frame_start(audio_t: float) -> int:
    return math.floor(audio_t * SAMPLE_RATE / FRAME_SAMPLES) * FRAME_SAMPLES
