"""Deterministic reading of what a caller said, with no model.

Pure functions over one utterance, shared by the rules brain and the per-turn screening:
answers to questions (``answers``), what the caller wants (``intents``), details they give
(``details``), escalations (``escalation``) and consent withdrawal (``revocation``), and the
two read together (``reading``). Caller words are only ever matched, never turned into
subjects, numbers or queries. English only.
"""

from switchboard.voice.understanding.answers import (
    consent_answer,
    is_goodbye,
    is_no,
    is_yes,
    sounds_resolved,
)
from switchboard.voice.understanding.details import (
    correction_targets,
    find_address,
    find_email,
    wants_to_go_back,
)
from switchboard.voice.understanding.escalation import ESCALATIONS, Escalation, classify
from switchboard.voice.understanding.intents import (
    DEPARTMENTS,
    Department,
    asks_for_refund,
    find_amount,
    intent,
    wants_to_order,
)
from switchboard.voice.understanding.reading import PRE_MODEL, Reading, read
from switchboard.voice.understanding.revocation import revokes_consent, without_revocation
from switchboard.voice.understanding.text import normalise

__all__ = [
    "DEPARTMENTS",
    "ESCALATIONS",
    "PRE_MODEL",
    "Department",
    "Escalation",
    "Reading",
    "asks_for_refund",
    "classify",
    "consent_answer",
    "correction_targets",
    "find_address",
    "find_amount",
    "find_email",
    "intent",
    "is_goodbye",
    "is_no",
    "is_yes",
    "normalise",
    "read",
    "revokes_consent",
    "sounds_resolved",
    "wants_to_go_back",
    "wants_to_order",
    "without_revocation",
]
