"""An utterance as clauses of words, the unit the escalation and revocation readers work on.

Contractions are spelled out ("don't" → "do not", "I'd" → "I would") so a negation or a
request frame is one pattern, not five. Clauses end at sentence punctuation, commas,
semicolons and "but": "I don't want a robot, get me a person" is a negated clause and a
request, and only the request counts.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from switchboard.voice.understanding.text import normalise

_CONTRACTIONS: Final[tuple[tuple[str, str], ...]] = (
    (r"\bcan't\b", "cannot"),
    (r"\bcannot\b", "cannot"),
    (r"\bwon't\b", "will not"),
    (r"\bshan't\b", "shall not"),
    (r"\blet's\b", "let us"),
    (r"\b(\w+)n't\b", r"\1 not"),
    (r"\bi'm\b", "i am"),
    (r"\b(\w+)'ll\b", r"\1 will"),
    (r"\b(\w+)'d\b", r"\1 would"),
    (r"\b(\w+)'ve\b", r"\1 have"),
    (r"\b(\w+)'re\b", r"\1 are"),
    (
        r"\b(it|that|there|what|who|whoever|he|she|where|here|this|someone|somebody|"
        r"everyone|nobody|anybody|anyone|everything|nothing)'s\b",
        r"\1 is",
    ),
    # Transcripts often drop the apostrophe.
    (
        r"\b(dont|doesnt|didnt|isnt|arent|wasnt|werent|wont|cant|couldnt|shouldnt|wouldnt|"
        r"havent|hasnt)\b",
        "<negated>",
    ),
    (r"\bim\b", "i am"),
    (r"\bive\b", "i have"),
    (r"\b(who|where|what|there|that)s\b", r"\1 is"),
    (
        r"\bits (a|an|not|been|going|getting|on|over|so|really|very|too|just|always|never|"
        r"still|urgent|serious|bad|dangerous|happening|all)\b",
        r"it is \1",
    ),
    (
        r"\bill (be|kill|call|sue|take|go|get|see|have|make|report|come|never|just|do|pay|"
        r"find|tell|contact|speak|talk|hurt|smash|beat|burn|stab|shoot|drag|file|write)\b",
        r"i will \1",
    ),
    (r"\bid (like|rather|prefer|love|want|appreciate|be|need)\b", r"i would \1"),
    (r"\baint\b", "is not"),
    (r"\bthru\b", "through"),
    (r"\bsuper visor\b", "supervisor"),
    (r"\bgonna\b", "going to"),
    (r"\bwanna\b", "want to"),
    (r"\bgotta\b", "got to"),
)
_BARE_NEGATIONS = {
    "dont": "do not",
    "doesnt": "does not",
    "didnt": "did not",
    "isnt": "is not",
    "arent": "are not",
    "wasnt": "was not",
    "werent": "were not",
    "wont": "will not",
    "cant": "cannot",
    "couldnt": "could not",
    "shouldnt": "should not",
    "wouldnt": "would not",
    "havent": "have not",
    "hasnt": "has not",
}


_COMPILED = tuple(
    (re.compile(p), (lambda m: _BARE_NEGATIONS[m.group(1)]) if r == "<negated>" else r)
    for p, r in _CONTRACTIONS
)
_BREAKS = re.compile(r"[.!?;:,\u2014\u2013()\"]+|\s-\s|\bbut\b|\bhowever\b")
_WORD = re.compile(r"[a-z0-9$£€']+(?:[-.][a-z0-9]+)*")


_POSSESSIVE = re.compile(r"(\w)'s\b")


def expand(text: str) -> str:
    """Normalised text with contractions spelled out; any other "'s" (a possessive, or an
    "is" after a noun) becomes a word of its own: "the manager 's special"."""
    t = normalise(text)
    for pattern, replacement in _COMPILED:
        t = pattern.sub(replacement, t)
    return _POSSESSIVE.sub(r"\1 's", t)


def clauses(text: str) -> list[str]:
    """The clauses of an utterance, each as single-spaced lower-case words."""
    return list(_clauses(text))


@functools.lru_cache(maxsize=256)
def _clauses(text: str) -> tuple[str, ...]:
    # Each caller turn is read several times (the screen, the rules brain): split it once.
    out = []
    for part in _BREAKS.split(expand(text)):
        tokens = _WORD.findall(part)
        if tokens:
            out.append(" ".join(t if t == "'s" else t.strip("'") for t in tokens))
    return tuple(out)
