"""Business hours of a queue: weekly opening ranges and closed days in the queue's timezone.

A queue is open at an instant when, in its own timezone, the weekday has a range that
contains the local time and the date is not a listed closed day. Ranges are half-open
(``09:00-17:00`` is open at 16:59:59 and closed at 17:00), ``24:00`` ends a range at
midnight, and a night shift is written as two ranges on consecutive days, so no range
crosses midnight and a weekday always means the local calendar day.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday keys in ``datetime.weekday()`` order."""

_RANGE_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
MINUTES_PER_DAY = 24 * 60


class HoursError(ValueError):
    """A business-hours entry cannot be understood; the message says which and why."""


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Compiled opening hours: minute ranges per weekday, closed dates, and the timezone."""

    zone: ZoneInfo
    weekly: tuple[tuple[tuple[int, int], ...], ...]
    """Seven tuples (Monday first) of ``(start_minute, end_minute)`` half-open ranges."""
    closed_dates: frozenset[dt.date]

    def is_open(self, at: dt.datetime) -> bool:
        """Whether the queue is open at ``at`` (an aware datetime, any timezone)."""
        if at.tzinfo is None:
            # A naive time is ambiguous across queues in different zones; refuse to guess.
            raise ValueError("Business hours need a timezone-aware datetime.")
        local = at.astimezone(self.zone)
        if local.date() in self.closed_dates:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.weekly[local.weekday()])

    @property
    def always_open(self) -> bool:
        return not self.closed_dates and all(r == ((0, MINUTES_PER_DAY),) for r in self.weekly)


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; ``HoursError`` naming it when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(
            f"Unknown timezone {name!r}; use an IANA name such as 'Europe/Paris'."
        ) from None


def parse_range(text: str) -> tuple[int, int]:
    """``"09:00-17:30"`` as minutes since midnight, ``(540, 1050)``."""
    match = _RANGE_RE.match(text.strip())
    if match is None:
        raise HoursError(f"Opening range {text!r} is not written as 'HH:MM-HH:MM'.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > MINUTES_PER_DAY:
        raise HoursError(f"Opening range {text!r} has a time outside 00:00-24:00.")
    if end <= start:
        raise HoursError(
            f"Opening range {text!r} ends before it starts; split a night shift into two "
            "ranges on consecutive days."
        )
    return start, end


def compile_hours(
    timezone: str, weekly: dict[str, list[str]], closed: list[dt.date]
) -> BusinessHours:
    """Build ``BusinessHours`` from config values; a missing weekday means closed all day."""
    unknown = sorted(set(weekly) - set(WEEKDAYS))
    if unknown:
        raise HoursError(f"Unknown weekday {unknown[0]!r}; use one of {', '.join(WEEKDAYS)}.")
    days: list[tuple[tuple[int, int], ...]] = []
    for day in WEEKDAYS:
        ranges = sorted(parse_range(text) for text in weekly.get(day, []))
        for (_, end), (start, _) in itertools.pairwise(ranges):
            if start < end:
                raise HoursError(f"Opening ranges on {day} overlap.")
        days.append(tuple(ranges))
    return BusinessHours(zone=zone(timezone), weekly=tuple(days), closed_dates=frozenset(closed))
