"""Callers' event keys: one per caller, shared with their consent records, gone on erasure.

Both backends (SQLite and PostgreSQL) through the ``ledger`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from switchboard.consent.ledger.ledger import KeyErased, Ledger
from switchboard.contracts.call import CallbackRequested
from switchboard.contracts.consent import RecordConsent
from switchboard.runtime.sealing import open_sealed, seal

NUMBER = "+14155550991"


def test_a_caller_keeps_one_reference_and_key_across_calls(ledger: Ledger) -> None:
    ref, key = ledger.caller_key(NUMBER, "call-1")
    assert ledger.caller_key(NUMBER, "call-2") == (ref, key)
    assert ledger.caller_key("+14155550992", "call-3")[0] != ref
    # Without a number the key belongs to the call.
    web_ref, _ = ledger.caller_key(None, "web-call")
    assert web_ref != ref
    assert ledger.caller_key(None, "web-call")[0] == web_ref
    assert NUMBER not in ref


def test_the_event_key_is_the_consent_records_key_and_erasure_destroys_both(
    ledger: Ledger, command: Callable[..., RecordConsent]
) -> None:
    (appended,) = ledger.append([command(caller_number=NUMBER)])
    ref, key = ledger.caller_key(NUMBER, "call-9")
    # The consent record's pseudonym is the events' caller reference: one key per person.
    assert appended.stored.record.subject == ref  # type: ignore[union-attr]
    event = seal(CallbackRequested(call_id="call-9", reason="no one free", number=NUMBER), ref, key)
    assert event.sealed is not None
    assert event.number is None
    assert open_sealed(event.sealed, ledger.event_key_of(ref)) == {"number": NUMBER}

    assert ledger.erase(NUMBER) == 1
    with pytest.raises(KeyErased):
        ledger.event_key_of(ref)
    # A later call of the same number gets a new reference, unlinked from the old one.
    assert ledger.caller_key(NUMBER, "call-10")[0] != ref
    assert ledger.verify().ok
