"""Hold audio that writes down when it played: the simulation's stand-in for hold music.

Text mode plays no audio, but a caller on hold in a room hears hold music from the moment
the worker puts them on hold (``voice.transfer.hold``), before the bridge has said
anything about the transfer. The report keeps these spans so a measure of the caller's
silence (``bench.chaos``) can tell time on hold from time the caller heard nothing.
"""

from __future__ import annotations

import time

import msgspec


class HoldSpan(msgspec.Struct, frozen=True):
    """Hold audio played from ``start_s`` to ``end_s`` (``None``: until the call ended),
    in seconds from the call's start."""

    start_s: float
    end_s: float | None


class HoldLog:
    """A ``HoldAudio`` that plays nothing and records when it would have."""

    def __init__(self, t0: float) -> None:
        self._t0 = t0
        self._start: float | None = None
        self.spans: list[HoldSpan] = []

    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    async def start(self) -> None:
        if self._start is None:
            self._start = self._now()

    async def stop(self) -> None:
        if self._start is not None:
            self.spans.append(HoldSpan(self._start, self._now()))
            self._start = None

    def played(self) -> list[HoldSpan]:
        """Every span, one still playing included (open-ended)."""
        if self._start is None:
            return list(self.spans)
        return [*self.spans, HoldSpan(self._start, None)]
