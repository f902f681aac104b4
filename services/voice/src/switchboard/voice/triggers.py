"""Deterministic escalation and revocation triggers, checked on every caller turn.

These must not depend on a model: they keep working when every LLM provider is down and
cannot be talked out of by a prompt injection. Safety outranks legal threats, which
outrank an explicit request for a person, which outranks repeated failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from switchboard.contracts.escalation import EscalationReason, EscalationTrigger
from switchboard.voice.understanding import normalise


@dataclass(frozen=True, slots=True)
class EscalationAsk:
    """A need to escalate, found by a detector or chosen by the model's tool."""

    reason: EscalationReason
    trigger: EscalationTrigger
    wants_human: bool = False
    """The caller asked for a person, not a manager."""


def _phrases(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


SAFETY = _phrases(
    r"kill (?:myself|me)",
    r"hurt (?:myself|me)",
    r"suicid\w*",
    r"self[- ]harm",
    r"end my life",
    r"emergency",
    r"in danger",
    r"threaten(?:ed|ing)? me",
    r"overdose",
    r"smell(?:s)? gas",
    r"on fire",
)
LEGAL = _phrases(
    r"lawyers?",
    r"attorneys?",
    r"solicitors?",
    r"sue",
    r"suing",
    r"lawsuit",
    r"legal action",
    r"take (?:you|this) to court",
    r"small claims",
    r"ombudsman",
)
MANAGER = _phrases(r"manager", r"supervisor", r"someone in charge", r"your boss")
HUMAN = _phrases(
    r"a human",
    r"human being",
    r"real person",
    r"actual person",
    r"live (?:agent|person)",
    r"(?:talk|speak) (?:to|with) (?:a |an |some )?"
    r"(?:person|human|someone real|agent|representative|operator)",
    r"representative",
    r"operator",
)
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
REVOKE = _phrases(
    r"(?:stop|pause|end|turn off|switch off) (?:the |this )?record(?:ing)?",
    r"(?:don't|do not) record(?: me| this)?",
    r"no (?:more )?recording",
    r"withdraw (?:my )?consent",
    r"revoke (?:my )?consent",
    r"no longer consent",
)


def detect_escalation(text: str) -> EscalationAsk | None:
    """The escalation a sentence asks for by itself, without counting failures."""
    t = normalise(text)
    if SAFETY.search(t):
        return EscalationAsk(EscalationReason.SAFETY, EscalationTrigger.PHRASE, wants_human=True)
    if LEGAL.search(t):
        return EscalationAsk(
            EscalationReason.LEGAL_THREAT, EscalationTrigger.PHRASE, wants_human=True
        )
    if HUMAN.search(t):
        return EscalationAsk(
            EscalationReason.CALLER_REQUEST, EscalationTrigger.PHRASE, wants_human=True
        )
    if MANAGER.search(t):
        return EscalationAsk(EscalationReason.CALLER_REQUEST, EscalationTrigger.PHRASE)
    return None


def revokes_consent(text: str) -> bool:
    return bool(REVOKE.search(normalise(text)))


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
