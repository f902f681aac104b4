"""The chaos run's event audit finds what it looks for: it keeps one event per (source, id)
and names a fact stored under two identities, a call without its end and a gap in a
call's numbering (``bench/chaos/events.py``; the run itself is ``tests/test_chaos.py``)."""

from __future__ import annotations

from bench.chaos.events import audit_events
from switchboard.contracts.call import CallEnded, CallOutcome, CallStarted
from switchboard.contracts.envelope import CloudEvent, decode_envelope, encode_event


def voice(payload: CallStarted | CallEnded, number: int, event_id: str) -> CloudEvent:
    out = encode_event(payload, event_id=event_id, sequence=number, source="urn:switchboard:voice")
    return decode_envelope(out.body)


def test_copies_are_dropped_and_a_whole_call_passes() -> None:
    started = voice(CallStarted(call_id="c-1", room="r"), 1, "e-1")
    ended = voice(CallEnded(call_id="c-1", outcome=CallOutcome.RESOLVED), 2, "e-2")
    audit = audit_events([started, started, ended, ended], ["c-1"])
    assert (audit.stored, audit.unique, audit.copies_dropped) == (4, 2, 2)
    assert audit.facts_twice == []
    assert audit.identity_conflicts == []
    assert audit.calls_without_end == []
    assert audit.calls_with_gaps == []


def test_a_fact_twice_a_missing_end_and_a_gap_are_named() -> None:
    events = [
        voice(CallStarted(call_id="c-1", room="r"), 1, "e-1"),
        voice(CallStarted(call_id="c-1", room="r"), 1, "e-1-again"),  # one fact, two ids
        voice(CallStarted(call_id="c-2", room="r"), 1, "e-3"),
        voice(CallEnded(call_id="c-2", outcome=CallOutcome.RESOLVED), 3, "e-4"),  # no 2
    ]
    audit = audit_events(events, ["c-1", "c-2"])
    assert audit.facts_twice == ["voice:c-1:0000000001"]
    assert audit.calls_without_end == ["c-1"]
    assert audit.calls_with_gaps == ["c-1", "c-2"]


def test_two_different_events_under_one_identity_are_a_conflict() -> None:
    first = voice(CallStarted(call_id="c-1", room="r-1"), 1, "e-1")
    other = voice(CallStarted(call_id="c-1", room="r-2"), 1, "e-1")
    assert audit_events([first, other], []).identity_conflicts == ["urn:switchboard:voice e-1"]
