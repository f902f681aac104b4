"""What one endpoint receives for one stored event: the CloudEvent in structured JSON,
as stored, or with the fields the contracts mark personal taken out of ``data``."""

from __future__ import annotations

import msgspec

from switchboard.contracts.base import personal_fields
from switchboard.contracts.envelope import UnknownEventType, decode_envelope, spec_for_type

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
_encoder = msgspec.json.Encoder()


class Undeliverable(ValueError):
    """An event the relay cannot prepare for this endpoint (it never posts a guess)."""


def prepare(body: bytes, drop_personal_data: bool) -> bytes:
    """The body to POST. With ``drop_personal_data`` an event of a type this version does
    not know is undeliverable: the relay cannot tell which of its fields are personal."""
    if not drop_personal_data:
        return body
    try:
        event = decode_envelope(body)
        personal = personal_fields(spec_for_type(event.type).payload)
        data = msgspec.json.decode(event.data)
    except (msgspec.DecodeError, UnknownEventType) as exc:
        raise Undeliverable(f"Cannot drop personal data from this event: {exc}") from None
    if not personal or not isinstance(data, dict):
        return body
    kept = {k: v for k, v in data.items() if k not in personal}
    return _encoder.encode(msgspec.structs.replace(event, data=msgspec.Raw(_encoder.encode(kept))))
