"""Which events one call has already applied, so a second delivery changes nothing.

JetStream and core NATS deliver at least once: a server restart or a redelivery can hand
the same event to a subscriber twice (``transfer.answered`` was seen twice after a NATS
restart). An event is identified by its CloudEvents ``source`` and ``id`` together (ids
are unique per source). Memory is bounded per call (the oldest pairs are forgotten first:
a duplicate arrives close to its original) and the call's end forgets them all.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

SEEN_PER_CALL: Final = 512
"""Pairs remembered per call: far more than the status events of a call's transfers."""


class SeenEvents:
    """The (source, id) pairs of the events a call applied, oldest first."""

    def __init__(self, limit: int = SEEN_PER_CALL) -> None:
        if limit < 1:
            raise ValueError("SeenEvents needs room for at least one event.")
        self._limit = limit
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def first_time(self, source: str, event_id: str) -> bool:
        """True the first time the pair is seen (and remember it); False for a repeat."""
        key = (source, event_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True

    def clear(self) -> None:
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._seen)
