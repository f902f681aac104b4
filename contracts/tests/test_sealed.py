"""Events never need to carry personal data in the clear (``contracts.sealed``)."""

from __future__ import annotations

import msgspec
import pytest

from switchboard.contracts.base import personal_fields
from switchboard.contracts.envelope import EVENTS, EventSpec
from switchboard.contracts.sealed import Sealable


@pytest.mark.parametrize("spec", EVENTS, ids=lambda s: s.type)
def test_every_event_with_personal_fields_can_seal_or_withhold_them(spec: EventSpec) -> None:
    personal = personal_fields(spec.payload)
    if not personal:
        return
    assert issubclass(spec.payload, Sealable), f"{spec.type} has {sorted(personal)}"
    for field in msgspec.structs.fields(spec.payload):
        if field.encode_name in personal:
            assert field.required is False, f"{spec.type}.{field.name} cannot be left empty"
