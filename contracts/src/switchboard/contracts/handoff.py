"""The handoff context carried from one agent to the next, to the human and to the CRM."""

from __future__ import annotations

import msgspec

from switchboard.contracts.base import Identifier, LanguageTag, Message, PersonalText, ShortText
from switchboard.contracts.consent import ConsentDecision

HANDOFF_CONTEXT_VERSION = 1


class HandoffContext(Message):
    """What the next agent (AI or human) needs to continue without asking again.

    Versioned: readers check ``version`` and ignore fields they do not know.
    """

    version: int = HANDOFF_CONTEXT_VERSION
    summary: PersonalText = ""
    """A short summary of the conversation so far."""
    intent: Identifier | None = None
    """The department intent found by triage (``billing``, ``support``, ``sales``)."""
    collected: dict[str, PersonalText] = msgspec.field(default_factory=dict)
    """Structured fields collected so far (email, shipping address, account number...)."""
    consent: ConsentDecision | None = None
    consent_receipt_sequence: int | None = None
    attempts: int = 0
    """How many times the AI tried and failed to resolve the caller's need."""
    language: LanguageTag = "en"
    from_agent: ShortText | None = None
