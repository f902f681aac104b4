"""Exponential backoff with jitter: how long to wait before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that double from ``first_s`` up to ``max_s``, each drawn within +-20 % so
    replicas that lost the database together do not retry in step."""

    first_s: float = 0.1
    max_s: float = 5.0
    _next_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next_s = self.first_s

    def next(self) -> float:
        """The delay before the next attempt (and the one after doubles)."""
        delay = self._next_s * random.uniform(0.8, 1.2)
        self._next_s = min(self.max_s, self._next_s * 2)
        return min(self.max_s, delay)

    def reset(self) -> None:
        self._next_s = self.first_s
