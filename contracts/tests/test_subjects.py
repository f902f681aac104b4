"""Subject table: shape, ownership and the streams that carry them."""

from __future__ import annotations

from switchboard.contracts import streams, subjects
from switchboard.contracts.envelope import EVENTS


def test_request_subjects_follow_sb_service_verb() -> None:
    for req in subjects.REQUESTS:
        parts = req.subject.split(".")
        assert parts[0] == "sb"
        assert len(parts) == 3
        assert req.group == f"sb.{parts[1]}"
        assert req.endpoint == parts[2]
    assert len({r.subject for r in subjects.REQUESTS}) == len(subjects.REQUESTS)


def test_event_and_command_subjects_are_captured_by_their_streams() -> None:
    assert streams.EVENTS.subjects == ("sb.evt.>",)
    for spec in EVENTS:
        assert spec.subject("c1").startswith("sb.evt.")
    assert subjects.consent_record_subject("c1").startswith("sb.cmd.consent.")
    assert streams.CONSENT_COMMANDS.retention is streams.Retention.WORK_QUEUE


def test_requests_never_overlap_the_streams() -> None:
    for req in subjects.REQUESTS:
        assert not req.subject.startswith(("sb.evt.", "sb.cmd."))
