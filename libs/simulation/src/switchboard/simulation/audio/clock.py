"""Audio time: the loop's clock sped up by a fixed factor.

Everything the simulated caller and speaker do is timed in audio seconds; at ``speed`` 4 a
second of audio passes in a quarter of a wall-clock second. Voice activity detection counts
samples, so it is unaffected; options measured in wall-clock time (endpointing delays, the
false-interruption timeout) are divided by the speed by whoever builds the session.
"""

from __future__ import annotations

import asyncio


class AudioClock:
    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()

    @property
    def origin(self) -> float:
        """The loop time at audio time 0."""
        return self._t0

    def now(self) -> float:
        """Audio seconds since the clock was made."""
        return (self._loop.time() - self._t0) * self.speed

    def wall(self, audio_seconds: float) -> float:
        """How long ``audio_seconds`` take on the wall clock."""
        return audio_seconds / self.speed

    async def sleep_until(self, audio_t: float) -> None:
        delay = audio_t - self.now()
        if delay > 0:
            await asyncio.sleep(delay / self.speed)

    async def sleep(self, audio_seconds: float) -> None:
        await self.sleep_until(self.now() + audio_seconds)
