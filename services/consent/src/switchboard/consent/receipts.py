"""The events an appended decision produces, with ids derived from the command id so a
republish after a crash is dropped by JetStream (and by CRMs de-duplicating on ``id``).
"""

from __future__ import annotations

import uuid

from switchboard.consent.ledger.ledger import Appended
from switchboard.contracts.base import Message
from switchboard.contracts.consent import ConsentDecision, ConsentRecorded, ConsentRevoked

EVENT_NAMESPACE = uuid.UUID("6f1f4f5e-2b7c-4a51-9d0e-5c0a5e11ed9e")


def event_id(kind: str, command_id: str) -> str:
    """A deterministic event id for ``kind`` (``recorded``/``revoked``) of one command."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"consent.{kind}:{command_id}"))


def events_for(appended: Appended) -> list[tuple[Message, str]]:
    """(payload, event id) pairs to publish for one appended command, in order."""
    command = appended.command
    receipt = appended.receipt
    out: list[tuple[Message, str]] = [
        (
            ConsentRecorded(
                call_id=command.call_id,
                command_id=command.command_id,
                decision=command.decision,
                jurisdiction=command.jurisdiction,
                mode=command.mode,
                notice_version=command.notice_version,
                receipt=receipt,
            ),
            event_id("recorded", command.command_id),
        )
    ]
    if command.decision is ConsentDecision.REVOKED:
        out.append(
            (
                ConsentRevoked(
                    call_id=command.call_id, command_id=command.command_id, receipt=receipt
                ),
                event_id("revoked", command.command_id),
            )
        )
    return out
