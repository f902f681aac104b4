"""Sealing events' personal fields: what leaves is ciphertext, bound to the caller."""

from __future__ import annotations

import os

import msgspec
import pytest

from switchboard.contracts.call import CallbackRequested, CallStarted
from switchboard.contracts.envelope import encode_event
from switchboard.contracts.handoff import HandoffContext
from switchboard.contracts.sealed import SealedFields, restore_fields
from switchboard.runtime.sealing import SealedFieldsError, open_sealed, seal, withhold

REF = "0b6f3c2e-9a41-4d7e-8f3a-2c5d6e7f8a9b"
OTHER = "1b6f3c2e-9a41-4d7e-8f3a-2c5d6e7f8a9b"
NUMBER = "+14155550123"
WORDS = "I was charged twice for March"


def _callback() -> CallbackRequested:
    return CallbackRequested(
        call_id="call-1",
        reason="nobody free",
        number=NUMBER,
        context=HandoffContext(summary=WORDS, intent="billing"),
    )


def test_sealed_events_hold_neither_the_number_nor_the_words_and_open_with_the_key() -> None:
    key = os.urandom(32)
    payload = _callback()
    sealed = seal(payload, REF, key)
    body = encode_event(sealed, source="test").body
    for secret in (NUMBER, NUMBER.removeprefix("+"), WORDS, "charged twice"):
        assert secret.encode() not in body
    assert sealed.caller_ref == REF
    assert sealed.number is None
    # The context's personal fields are sealed; what routing needs stays readable.
    assert sealed.context == HandoffContext(summary="", intent="billing")
    assert sealed.sealed is not None
    assert restore_fields(sealed, open_sealed(sealed.sealed, key)) == msgspec.structs.replace(
        payload, caller_ref=REF
    )


def test_a_sealed_value_opens_only_under_its_key_and_its_caller() -> None:
    key = os.urandom(32)
    sealed = seal(_callback(), REF, key).sealed
    assert sealed is not None
    with pytest.raises(SealedFieldsError):
        open_sealed(sealed, os.urandom(32))
    moved = msgspec.structs.replace(sealed, caller_ref=OTHER)  # pinned on another caller
    with pytest.raises(SealedFieldsError):
        open_sealed(moved, key)
    assert isinstance(
        msgspec.json.decode(msgspec.json.encode(sealed), type=SealedFields), SealedFields
    )


def test_without_a_key_personal_fields_are_left_out_and_named() -> None:
    out = withhold(_callback())
    assert (out.number, out.context, out.sealed) == (None, HandoffContext(intent="billing"), None)
    assert out.withheld == ["context.summary", "number"]
    body = encode_event(out, source="test").body
    assert NUMBER.encode() not in body
    assert WORDS.encode() not in body
    # An event with nothing personal gets the reference and no sealed value.
    plain = seal(CallStarted(call_id="call-2", room="r"), REF, os.urandom(32))
    assert (plain.caller_ref, plain.sealed, plain.withheld) == (REF, None, [])
