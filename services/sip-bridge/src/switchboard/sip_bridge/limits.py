"""Calls-per-second and concurrency caps for outbound dialling.

Carriers cap outbound calls per second (Twilio trunks default to 1) and a runaway loop
or a fraud attempt shows up first as a burst of dials, so the bridge enforces its own
caps whatever callers ask. The clock is injectable so tests do not sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; one token per dial attempt."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("A token bucket needs a positive rate and a burst of at least 1.")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def try_take(self) -> bool:
        """Take a token if one is available now."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until a token will be available (0 when one is)."""
        return self.time_for(1)

    def time_for(self, count: int) -> float:
        """Seconds until ``count`` tokens will have been available, if nobody else takes
        any (the wait of the ``count``-th in line)."""
        self._refill()
        return max(0.0, (count - self._tokens) / self._rate)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now


class ConcurrencyCap:
    """At most ``limit`` transfers in progress."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("A concurrency cap must allow at least one transfer.")
        self.limit = limit
        self.in_use = 0

    @property
    def full(self) -> bool:
        return self.in_use >= self.limit

    def try_acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        if self.in_use == 0:
            raise RuntimeError("Released a concurrency slot that was never taken.")
        self.in_use -= 1
