"""The registry of every type that travels on the wire.

One list, in a stable order, for what needs to see them all: the schema exporter
(``switchboard.ops``) documents each of them, and the runtime's log filter collects their
personal-data fields to redact.
"""

from __future__ import annotations

from typing import Any

from switchboard.contracts import envelope, errors, handoff, webhook
from switchboard.contracts.consent import RecordConsent
from switchboard.contracts.subjects import REQUESTS


def message_types() -> list[Any]:
    """Every type on the wire (Struct classes and tagged unions of them), each once."""
    types: list[Any] = [envelope.CloudEvent, errors.ErrorReply, handoff.HandoffContext]
    types.append(RecordConsent)
    types.append(webhook.DeadLetter)
    for req in REQUESTS:
        types.extend([req.request, req.reply])
    types.extend(spec.payload for spec in envelope.EVENTS)
    seen: set[str] = set()
    unique: list[Any] = []
    for t in types:
        key = repr(t)
        if key not in seen:
            seen.add(key)
            unique.append(t)
    return unique
