"""Subject table: shape, ownership and the streams that carry them."""

from __future__ import annotations

import re

import pytest

from switchboard.contracts import streams, subjects
from switchboard.contracts.envelope import EVENTS


def test_request_subjects_follow_sb_service_noun_verb() -> None:
    for req in subjects.REQUESTS:
        parts = req.subject.split(".")
        assert parts[0] == "sb"
        assert len(parts) in (3, 4)
        assert req.group == ".".join(parts[:-1])
        assert req.endpoint == parts[-1]
    assert len({r.subject for r in subjects.REQUESTS}) == len(subjects.REQUESTS)


def test_event_and_command_subjects_are_captured_by_their_streams() -> None:
    assert streams.EVENTS.subjects == ("sb.evt.>",)
    for spec in EVENTS:
        assert spec.subject("c1").startswith("sb.evt.")
    assert subjects.consent_record_subject("c1").startswith("sb.cmd.consent.")
    assert streams.CONSENT_COMMANDS.retention is streams.Retention.WORK_QUEUE


def test_requests_never_overlap_the_streams() -> None:
    for req in subjects.REQUESTS:
        assert not req.subject.startswith(("sb.evt.", "sb.cmd.", "sb.dead."))


def test_every_request_subject_has_its_spec_and_an_unknown_one_is_named() -> None:
    for req in subjects.REQUESTS:
        assert subjects.request_spec(req.subject) is req
    with pytest.raises(
        subjects.UnknownRequestSubject, match=re.escape("'sb.consent.polic' is not a")
    ):
        subjects.request_spec("sb.consent.polic")
    with pytest.raises(LookupError, match=re.escape("sb.escalation.decide")):
        subjects.request_spec("sb.nothing")


def test_an_inbox_prefix_is_the_users_own_subject_token_under_inbox() -> None:
    assert subjects.inbox_prefix("sip-bridge") == "_INBOX.sip-bridge"
    for bad in ("crm.a", "voice worker", "", "a>"):
        with pytest.raises(ValueError, match="one subject token"):
            subjects.inbox_prefix(bad)


def test_every_service_name_is_one_subject_token() -> None:
    # Each is also a NATS user whose replies come under its own inbox prefix.
    for owner in subjects.Owner:
        assert subjects.inbox_prefix(owner.value) == f"_INBOX.{owner.value}"
    assert {r.owner for r in subjects.REQUESTS} == set(subjects.Owner) - {subjects.Owner.VOICE}
