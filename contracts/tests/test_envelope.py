"""CloudEvents envelope: encoding, decoding, subjects and schema evolution."""

from __future__ import annotations

import datetime as dt
import json

import msgspec
import pytest

from switchboard.contracts import (
    CallEnded,
    CallOutcome,
    CallStarted,
    ConsentDecision,
    ConsentMode,
    ConsentReceipt,
    ConsentRecorded,
    FailureReason,
    TransferFailed,
    utcnow,
)
from switchboard.contracts.envelope import (
    EVENTS,
    MalformedEvent,
    UnknownEventType,
    decode_envelope,
    decode_event,
    encode_event,
    format_sequence,
    read_event,
    spec_for,
)


def test_an_event_is_a_cloudevent_whose_subject_is_the_call_id() -> None:
    out = encode_event(CallStarted(call_id="call-1", room="room-1"), event_id="e-1")
    body = json.loads(out.body)
    assert out.subject == "sb.evt.call.started.call-1"
    assert out.event_id == "e-1"
    assert body["specversion"] == "1.0"
    assert body["id"] == "e-1"
    assert body["type"] == "io.switchboard.call.started.v1"
    assert body["subject"] == "call-1"
    assert body["source"] == "urn:switchboard:voice"
    assert body["datacontenttype"] == "application/json"
    assert body["data"]["room"] == "room-1"
    assert "dataschema" not in body, "absent optional attributes are omitted, not null"


def _recorded(recorded_at: dt.datetime) -> ConsentRecorded:
    """A ledger receipt event recorded at ``recorded_at``."""
    receipt = ConsentReceipt(sequence=7, chain_hash="a" * 64, recorded_at=recorded_at)
    return ConsentRecorded(
        call_id="c",
        command_id="cmd",
        decision=ConsentDecision.GRANTED,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_version="v1",
        receipt=receipt,
    )


def test_decoding_returns_the_typed_payload() -> None:
    payload = _recorded(utcnow())
    event, decoded = decode_event(encode_event(payload).body)
    assert event.type.endswith("consent.recorded.v1")
    assert decoded == payload


def test_unknown_event_types_are_refused_with_a_clear_error() -> None:
    body = encode_event(CallStarted(call_id="c", room="r")).body
    tampered = body.replace(b"call.started.v1", b"call.started.v9")
    with pytest.raises(UnknownEventType, match=r"call\.started\.v9"):
        decode_event(tampered)


def test_every_event_type_is_versioned_and_unique() -> None:
    types = [spec.type for spec in EVENTS]
    assert len(types) == len(set(types))
    assert all(t.rsplit(".", 1)[1].startswith("v") for t in types)
    assert all("call_id" in {f.name for f in msgspec.structs.fields(s.payload)} for s in EVENTS)


def test_a_call_id_that_is_not_a_safe_subject_token_is_rejected() -> None:
    for bad in ["a.b", "a b", "*", ">", "", "x" * 65]:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(json.dumps({"call_id": bad, "room": "r"}), type=CallStarted)


def test_older_consumers_ignore_fields_added_later() -> None:
    newer = json.dumps({"call_id": "c", "room": "r", "added_in_v2": {"x": 1}})
    assert msgspec.json.decode(newer, type=CallStarted).room == "r"


def test_new_optional_fields_default_when_an_older_producer_omits_them() -> None:
    older = json.dumps({"call_id": "c", "transfer_id": "t", "reason": "busy", "final": False})
    failed = msgspec.json.decode(older, type=TransferFailed)
    assert failed.reason is FailureReason.BUSY
    assert failed.sip_status is None


def test_spec_lookup_is_by_payload_type() -> None:
    assert spec_for(CallStarted).subject("k") == "sb.evt.call.started.k"


def test_a_trailing_newline_cannot_sneak_into_ids_or_addresses() -> None:
    from switchboard.contracts import Destination

    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps({"call_id": "abc\n", "room": "r"}), type=CallStarted)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps({"id": "d", "address": "+14155550100\n"}), type=Destination)
    ok = msgspec.json.decode(json.dumps({"id": "d", "address": "+14155550100"}), type=Destination)
    assert ok.address == "+14155550100"


def _as_version(out_body: bytes, version: int, **data: object) -> bytes:
    """``out_body`` as a later version of its type would look: new type, new data shape."""
    body = json.loads(out_body)
    body["type"] = body["type"].rsplit(".", 1)[0] + f".v{version}"
    body["id"] = f"{body['id']}-v{version}"
    body["data"] = {**body["data"], **data}
    return json.dumps(body).encode()


def test_reading_an_event_of_a_newer_version_skips_it_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    v1 = encode_event(CallStarted(call_id="c-ver", room="r"), source="voice/test")
    # A v2 whose data this version cannot even decode (room became an object).
    v2 = _as_version(v1.body, 2, room={"name": "r"}, started_at="not a time")
    with caplog.at_level("WARNING", logger="switchboard.contracts.envelope"):
        assert read_event(v2) is None
        assert read_event(v2) is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].event_type == "io.switchboard.call.started.v2"  # type: ignore[attr-defined]
    read = read_event(v1.body)
    assert read is not None
    assert read[1] == CallStarted(call_id="c-ver", room="r", started_at=read[1].started_at)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"specversion": "1.0"}',
        json.dumps(
            {
                "specversion": "1.0",
                "id": "e",
                "source": "s",
                "type": "io.switchboard.call.started.v1",
                "subject": "c",
                "time": "2026-01-01T00:00:00Z",
                "data": {"call_id": "c", "room": "r", "caller_number": 14155550100},
            }
        ).encode(),
    ],
)
def test_a_malformed_event_raises_a_typed_error_that_quotes_no_value(body: bytes) -> None:
    with pytest.raises(MalformedEvent) as raised:
        read_event(body)
    assert "14155550100" not in str(raised.value)


def test_the_source_names_the_owning_service_and_the_identity_survives_another_instance() -> None:
    """A receipt re-published by a restarted ledger under another ``SB_INSTANCE`` is the
    same CloudEvent: same (source, id), same time (when the ledger recorded it)."""
    recorded_at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    payload = _recorded(recorded_at)
    copies = [
        decode_envelope(encode_event(payload, event_id="e-1", instance=name).body)
        for name in ("consent@pod-1", "consent@pod-2")
    ]
    assert {(e.source, e.id, e.time) for e in copies} == {
        ("urn:switchboard:consent", "e-1", recorded_at)
    }
    assert [e.instance for e in copies] == ["consent@pod-1", "consent@pod-2"]
    assert all(spec.source == f"urn:switchboard:{spec.owner.value}" for spec in EVENTS)


def test_time_is_when_the_fact_happened_not_when_it_was_published() -> None:
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    event = decode_envelope(
        encode_event(CallStarted(call_id="c", room="r", started_at=started)).body
    )
    assert event.time == started
    ended = CallEnded(call_id="c", outcome=CallOutcome.RESOLVED, ended_at=started)
    assert decode_envelope(encode_event(ended).body).time == started
    # Every named occurrence field exists on its payload type.
    for spec in EVENTS:
        if spec.occurred:
            first = spec.occurred.split(".")[0]
            assert first in {f.name for f in msgspec.structs.fields(spec.payload)}, spec.type


def test_the_sequence_extension_sorts_as_text_in_the_order_it_counts() -> None:
    numbers = [1, 2, 9, 10, 11, 100, 2**31 - 1]
    values = [format_sequence(n) for n in numbers]
    assert sorted(values) == values
    assert [int(v) for v in values] == numbers
    with pytest.raises(ValueError, match="starts at 1"):
        format_sequence(0)
    body = json.loads(encode_event(CallStarted(call_id="c", room="r"), sequence=3).body)
    assert body["sequence"] == "0000000003"
    assert "sequence" not in json.loads(encode_event(CallStarted(call_id="c", room="r")).body)
