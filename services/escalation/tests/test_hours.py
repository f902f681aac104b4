"""Business hours: half-open ranges, local weekdays, daylight saving, closed days."""

from __future__ import annotations

import datetime as dt

import pytest

from switchboard.escalation.hours import HoursError, compile_hours, parse_range

OFFICE = {day: ["09:00-12:00", "13:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def test_ranges_are_half_open_and_a_lunch_break_is_closed() -> None:
    hours = compile_hours("UTC", OFFICE, [])
    assert not hours.is_open(utc(2026, 3, 4, 8, 59))
    assert hours.is_open(utc(2026, 3, 4, 9, 0))
    assert hours.is_open(utc(2026, 3, 4, 11, 59, 59))
    assert not hours.is_open(utc(2026, 3, 4, 12, 30))
    assert not hours.is_open(utc(2026, 3, 4, 17, 0))


def test_the_weekday_is_the_queues_local_weekday() -> None:
    # Saturday 02:00 UTC is still Friday 21:00 in New York.
    hours = compile_hours("America/New_York", {"fri": ["20:00-22:00"]}, [])
    assert hours.is_open(utc(2026, 3, 7, 2, 0))
    assert not compile_hours("UTC", {"fri": ["20:00-22:00"]}, []).is_open(utc(2026, 3, 7, 2, 0))


def test_opening_follows_daylight_saving_time() -> None:
    hours = compile_hours("Europe/Paris", OFFICE, [])
    # 08:30 UTC is 09:30 in Paris in winter (open) and 10:30 in summer (open);
    # 07:30 UTC is 08:30 in winter (closed) but 09:30 after the March change (open).
    assert not hours.is_open(utc(2026, 3, 27, 7, 30))
    assert hours.is_open(utc(2026, 3, 30, 7, 30))


def test_a_closed_date_overrides_the_weekly_hours() -> None:
    hours = compile_hours("UTC", OFFICE, [dt.date(2026, 12, 25)])
    assert not hours.is_open(utc(2026, 12, 25, 10, 0))
    assert hours.is_open(utc(2026, 12, 24, 10, 0))


def test_round_the_clock_hours_end_at_midnight() -> None:
    hours = compile_hours("UTC", {"sun": ["00:00-24:00"]}, [])
    assert hours.is_open(utc(2026, 3, 8, 23, 59, 59))
    assert not hours.is_open(utc(2026, 3, 9, 0, 0))


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compile_hours("UTC", OFFICE, []).is_open(dt.datetime(2026, 3, 4, 10, 0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9-5", "HH:MM-HH:MM"),
        ("09:00-25:00", "outside 00:00-24:00"),
        ("09:61-10:00", "outside 00:00-24:00"),
        ("22:00-06:00", "split a night shift"),
        ("10:00-10:00", "ends before it starts"),
    ],
)
def test_bad_ranges_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(HoursError, match=message):
        parse_range(text)


def test_overlaps_unknown_days_and_unknown_timezones_are_refused() -> None:
    with pytest.raises(HoursError, match="overlap"):
        compile_hours("UTC", {"mon": ["09:00-12:00", "11:00-13:00"]}, [])
    with pytest.raises(HoursError, match="Unknown weekday 'monday'"):
        compile_hours("UTC", {"monday": ["09:00-12:00"]}, [])
    with pytest.raises(HoursError, match="Unknown timezone 'Mars/Olympus'"):
        compile_hours("Mars/Olympus", OFFICE, [])
