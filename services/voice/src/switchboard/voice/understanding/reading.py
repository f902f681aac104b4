"""One utterance read as a whole: the escalation it asks for, whether it withdraws consent,
and whether the screen acts on it before a model is asked.

With a model on the line, the deterministic screen acts first only where a mistake is
costly and the words are unambiguous: someone's safety, an explicit request for a person,
an explicit "stop recording". Everything else (a manager, a legal threat, anything
ambiguous) is the model's call. With no model, the rules brain acts on all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.voice.understanding.escalation import Escalation, classify
from switchboard.voice.understanding.revocation import revokes_consent

PRE_MODEL: frozenset[Escalation] = frozenset({"safety", "person"})
"""Escalation classes the screen acts on before any model."""


@dataclass(frozen=True, slots=True)
class Reading:
    escalation: Escalation | None
    revokes: bool

    @property
    def pre_model(self) -> bool:
        """Whether the screen acts on this before a model sees it."""
        return self.revokes or self.escalation in PRE_MODEL


def read(text: str) -> Reading:
    return Reading(escalation=classify(text), revokes=revokes_consent(text))
