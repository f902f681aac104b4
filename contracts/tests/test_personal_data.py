"""Personal-data markers: what the logging layer relies on to redact."""

from __future__ import annotations

from switchboard.contracts import (
    CallbackRequested,
    CallStarted,
    ConsentPolicyQuery,
    EscalationRequest,
    HandoffContext,
    PlaceTransfer,
    RecordConsent,
    TransferDialing,
    personal_fields,
)


def test_numbers_and_transcripts_are_marked_personal() -> None:
    # ``sealed`` holds them encrypted: still personal data (a webhook that drops it, drops it).
    assert personal_fields(CallStarted) == {"caller_number", "sealed"}
    assert personal_fields(ConsentPolicyQuery) == {"caller_number"}
    assert personal_fields(RecordConsent) == {"caller_number", "transcript_excerpt"}
    assert personal_fields(CallbackRequested) == {"number", "context", "sealed"}


def test_a_struct_carrying_personal_data_is_personal_as_a_whole() -> None:
    assert personal_fields(HandoffContext) == {"summary", "collected"}
    assert "context" in personal_fields(EscalationRequest)
    assert "context" in personal_fields(PlaceTransfer)


def test_ids_and_states_are_not_personal() -> None:
    assert personal_fields(TransferDialing) == frozenset()


def test_order_contact_details_are_personal_and_amounts_are_not() -> None:
    from switchboard.contracts.crm import CreditGranted, OrderPlaced, PlaceOrder

    assert personal_fields(OrderPlaced) == {"email", "shipping_address", "sealed"}
    assert personal_fields(PlaceOrder) == {"email", "shipping_address", "caller_number"}
    assert personal_fields(CreditGranted) == frozenset()
