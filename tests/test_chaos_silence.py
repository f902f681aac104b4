"""The chaos run's silence measure (``bench/chaos/calls.py``): a caller on hold hears hold
audio, so time on hold is not silence, including the time before the bridge's first event.
The run itself is ``tests/test_chaos.py``."""

from __future__ import annotations

from typing import Any

from bench.chaos.calls import silences
from switchboard.simulation.holdlog import HoldSpan
from switchboard.simulation.report import EventView, Report, Utterance

CALL_ID = "c-1"


def said(text: str, at_s: float) -> Utterance:
    return Utterance("triage", text, at_s, "call", 1, True, "")


def event(kind: str, at_s: float, **data: Any) -> EventView:
    return EventView(kind, f"io.switchboard.{kind}.v1", "urn:switchboard:test", "", at_s, data)


def report(events: list[EventView], holds: list[HoldSpan]) -> Report:
    return Report(
        scenario="s",
        call_id=CALL_ID,
        outcome="callback",
        consent=None,
        ok=True,
        agents=[],
        transcript=[
            said("Get me a real person.", 0.4),
            said("I'm finding someone.", 0.5),
            said("I couldn't reach anyone.", 6.0),
        ],
        events=[*events, event("call.ended", 6.1)],
        receipts=[],
        transfers=[],
        legs=[],
        transfers_in_progress=[],
        recording=[],
        checks=[],
        errors=[],
        holds=holds,
    )


def test_hold_before_the_bridges_first_event_is_not_silence() -> None:
    """Chaos run: a bridge that could not write its journal during a NATS restart and was
    then killed published nothing until another instance failed the transfer 5.5 s later;
    the caller heard hold audio from the transfer line on, yet counted as silent."""
    failed = event("transfer.failed", 5.9, transfer_id="t-1", final=True)
    assert silences(report([failed], holds=[])) == (5.5, 0.0)  # the events alone
    longest, on_hold = silences(report([failed], holds=[HoldSpan(0.5, 5.95)]))
    assert (longest, on_hold) == (0.4, 5.45)


def test_a_hold_still_playing_at_the_end_runs_to_the_end() -> None:
    longest, on_hold = silences(report([], holds=[HoldSpan(0.5, None)]))
    assert (longest, on_hold) == (0.4, 5.6)


def test_a_gap_outside_any_hold_still_counts() -> None:
    longest, _ = silences(report([], holds=[HoldSpan(0.5, 1.0)]))
    assert longest == 5.0
