"""Deterministic escalation and revocation triggers, and the repeated-failure count.

What the understanding finds (``understanding.escalation``, ``understanding.revocation``)
becomes an ``EscalationAsk`` here. The screen acts before any model only on what
``detect_before_model`` returns; the rules brain uses ``detect_escalation``. Neither
depends on a model: they keep working when every LLM provider is down and cannot be
talked out of by a prompt injection. Safety outranks legal threats, which outrank a
request for a person, which outranks a manager, which outranks repeated failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from switchboard.contracts.escalation import EscalationReason, EscalationTrigger
from switchboard.voice import understanding
from switchboard.voice.understanding import Escalation, normalise


@dataclass(frozen=True, slots=True)
class EscalationAsk:
    """A need to escalate, found by a detector or chosen by the model's tool."""

    reason: EscalationReason
    trigger: EscalationTrigger
    wants_human: bool = False
    """The caller asked for a person, not a manager."""


EscalationChoice = Literal[
    "caller_wants_person", "caller_wants_manager", "legal_threat", "safety", "cannot_help"
]
"""The reasons the ``escalate`` tool offers a model."""
CHOICES: Final[dict[EscalationChoice, tuple[EscalationReason, bool]]] = {
    "caller_wants_person": (EscalationReason.CALLER_REQUEST, True),
    "caller_wants_manager": (EscalationReason.CALLER_REQUEST, False),
    "legal_threat": (EscalationReason.LEGAL_THREAT, True),
    "safety": (EscalationReason.SAFETY, True),
    "cannot_help": (EscalationReason.AGENT_CANNOT_HELP, False),
}
"""What each reason means: (reason, the caller wants a human)."""


def choice(ask: EscalationAsk) -> EscalationChoice:
    """The tool's reason for a detected escalation (the tool offers the model fewer)."""
    if ask.reason is EscalationReason.LEGAL_THREAT:
        return "legal_threat"
    if ask.reason is EscalationReason.SAFETY:
        return "safety"
    if ask.reason is EscalationReason.CALLER_REQUEST:
        return "caller_wants_person" if ask.wants_human else "caller_wants_manager"
    return "cannot_help"


def _phrases(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


FRUSTRATION = _phrases(
    r"not helping",
    r"(?:doesn't|does not|didn't|did not) help",
    r"useless",
    r"you don't understand",
    r"you do not understand",
    r"not what i (?:said|asked|meant)",
    r"going (?:round|around) in circles",
    r"waste of (?:my )?time",
    r"not good enough",
    r"that's not acceptable",
    r"unacceptable",
)
_ASKS: Final[dict[Escalation, EscalationAsk]] = {
    "safety": EscalationAsk(EscalationReason.SAFETY, EscalationTrigger.PHRASE, wants_human=True),
    "legal": EscalationAsk(
        EscalationReason.LEGAL_THREAT, EscalationTrigger.PHRASE, wants_human=True
    ),
    "person": EscalationAsk(
        EscalationReason.CALLER_REQUEST, EscalationTrigger.PHRASE, wants_human=True
    ),
    "manager": EscalationAsk(EscalationReason.CALLER_REQUEST, EscalationTrigger.PHRASE),
}


def ask_for(escalation: Escalation) -> EscalationAsk:
    """The escalation a detected class asks for."""
    return _ASKS[escalation]


def detect_escalation(text: str) -> EscalationAsk | None:
    """The escalation a sentence asks for by itself (all classes; the rules brain's view)."""
    found = understanding.classify(text)
    return None if found is None else _ASKS[found]


def detect_before_model(text: str) -> EscalationAsk | None:
    """The escalation the screen acts on before any model: safety and explicit requests
    for a person. A manager, a legal threat and anything ambiguous are the model's call."""
    found = understanding.classify(text)
    return _ASKS[found] if found in understanding.PRE_MODEL else None


def revokes_consent(text: str) -> bool:
    return understanding.revokes_consent(text)


def sounds_frustrated(text: str) -> bool:
    return bool(FRUSTRATION.search(normalise(text)))


@dataclass
class FailureTracker:
    """Counts turns where the caller is not being helped: frustration, the same sentence
    again, or a tool that failed. Reaching ``limit`` is itself an escalation trigger."""

    limit: int = 3
    count: int = 0
    _last: str = field(default="", repr=False)

    def observe_turn(self, text: str) -> None:
        t = normalise(text)
        if sounds_frustrated(t) or (t and t == self._last):
            self.count += 1
        self._last = t

    def observe_tool_error(self) -> None:
        self.count += 1

    def observe_not_understood(self) -> None:
        """The agent could not act on the caller's turn at all."""
        self.count += 1

    def reset(self) -> None:
        """A new agent starts with a clean slate: the count is about this agent failing."""
        self.count = 0
        self._last = ""

    @property
    def exhausted(self) -> bool:
        return self.count >= self.limit

    def escalation(self) -> EscalationAsk | None:
        if not self.exhausted:
            return None
        return EscalationAsk(EscalationReason.REPEATED_FAILURE, EscalationTrigger.FAILURE_COUNT)
