"""Answers to the agent's questions: consent, yes or no, goodbye, "that fixed it".

Deliberately conservative: when an answer is ambiguous it is ``UNCLEAR`` (or false), never
a guess, because a wrong "yes" to recording is worse than asking again.
"""

from __future__ import annotations

import re

from switchboard.contracts.consent import ConsentDecision
from switchboard.voice.understanding.text import normalise
from switchboard.voice.understanding.text import words as _words

# "no problem" and "not at all" are assent, so they are removed before looking for a "no".
_ASSENT_IDIOMS = re.compile(r"\b(?:no problem|not a problem|no worries|not at all)\b")
_GRANT = _words(
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "ok",
    "okay",
    "fine",
    "go ahead",
    "of course",
    "absolutely",
    "i agree",
    "i consent",
    "that's alright",
    "alright",
    "please do",
    "you may",
    "you can",
)
_DENY = _words(
    "no",
    "nope",
    "nah",
    "don't",
    "do not",
    "rather not",
    "i refuse",
    "i decline",
    "i object",
    "not ok",
    "not okay",
    "not fine",
    "stop recording",
    "no recording",
)


_HEDGE = _words(
    "not sure",
    "i'm not sure",
    "don't know",
    "dunno",
    "maybe",
    "perhaps",
    "i guess",
    "what do you mean",
    "why",
)


def consent_answer(text: str) -> ConsentDecision:
    """GRANTED, DENIED or UNCLEAR for an answer to "may we record this call?".

    A sentence with both a yes and a no ("yes, well no") or a hedge ("I'm not sure",
    "maybe") is UNCLEAR, never GRANTED.
    """
    t = normalise(text)
    if _HEDGE.search(t):
        return ConsentDecision.UNCLEAR
    t = _ASSENT_IDIOMS.sub(" yes ", t)
    granted, denied = bool(_GRANT.search(t)), bool(_DENY.search(t))
    if denied and not granted:
        return ConsentDecision.DENIED
    if granted and not denied:
        return ConsentDecision.GRANTED
    return ConsentDecision.UNCLEAR


def is_yes(text: str) -> bool:
    """A plain yes to a yes/no question (callback offers, confirmations)."""
    return consent_answer(text) is ConsentDecision.GRANTED


def is_no(text: str) -> bool:
    return consent_answer(text) is ConsentDecision.DENIED


_GOODBYE = _words(
    "bye",
    "goodbye",
    "good bye",
    "that's all",
    "that is all",
    "that's everything",
    "nothing else",
    "have a good day",
    "hang up",
)


def is_goodbye(text: str) -> bool:
    return bool(_GOODBYE.search(normalise(text)))


_RESOLVED = _words(
    "that fixed it",
    "that worked",
    "it works",
    "works now",
    "working now",
    "that helped",
    "problem solved",
    "all good",
    "sorted",
    "that's it",
)


def sounds_resolved(text: str) -> bool:
    return bool(_RESOLVED.search(normalise(text)))
