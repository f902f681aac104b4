"""Deterministic reading of what a caller said: consent answers, intents, emails, addresses.

Pure functions over one utterance, shared by the rules brain and the per-turn screening.
They are deliberately conservative: when an answer is ambiguous they say so (``None`` or
``UNCLEAR``) instead of guessing, because a wrong "yes" to recording is worse than asking
again. Caller words are only ever matched, never turned into subjects, numbers or queries.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from switchboard.contracts.consent import ConsentDecision

Department = Literal["billing", "support", "sales"]
DEPARTMENTS: Final[tuple[Department, ...]] = ("billing", "support", "sales")


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


def normalise(text: str) -> str:
    """Lower-case, straight apostrophes, single spaces."""
    return " ".join(text.replace("’", "'").lower().split())


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


_INTENTS: Final[dict[Department, re.Pattern[str]]] = {
    "billing": _words(
        "bill",
        "billing",
        "bills",
        "billed",
        "invoice",
        "invoices",
        "charge",
        "charged",
        "charges",
        "refund",
        "payment",
        "pay",
        "paid",
        "balance",
        "overcharged",
        "subscription fee",
    ),
    "support": _words(
        "support",
        "technical",
        "tech",
        "broken",
        "not working",
        "doesn't work",
        "stopped working",
        "internet",
        "wifi",
        "wi-fi",
        "connection",
        "router",
        "outage",
        "dropping",
        "keeps dropping",
        "error",
        "password",
        "log in",
        "login",
        "reset",
        "crash",
        "crashes",
        "slow",
    ),
    "sales": _words(
        "buy",
        "purchase",
        "order",
        "upgrade",
        "new plan",
        "pricing",
        "price",
        "prices",
        "quote",
        "sales",
        "sign up",
        "subscribe",
        "headset",
    ),
}


def intent(text: str) -> Department | None:
    """The department a sentence is about; the first listed wins a tie (billing is the
    most common reason to call and the most sensitive to get wrong)."""
    t = normalise(text)
    for name, pattern in _INTENTS.items():
        if pattern.search(t):
            return name
    return None


_SPOKEN_AT = re.compile(r"\s+at\s+", re.IGNORECASE)
_SPOKEN_DOT = re.compile(r"\s+dot\s+", re.IGNORECASE)
_EMAIL = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
)


def find_email(text: str) -> str | None:
    """An email address in a typed or spoken sentence ("jo dot lee at example dot com")."""
    found = _EMAIL.search(text)
    if found is None:
        spoken = _SPOKEN_DOT.sub(".", _SPOKEN_AT.sub("@", text))
        found = _EMAIL.search(spoken)
    return found.group(0).lower().rstrip(".") if found else None


_STREET_WORDS = (
    "street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|"
    "terrace|close|square|sq|parkway|pkwy|highway|hwy"
)
_ADDRESS = re.compile(
    r"\b\d{1,6}[A-Za-z]?\s+(?:[A-Za-z0-9.'-]+\s+){0,5}(?:" + _STREET_WORDS + r")\b[^?!]*",
    re.IGNORECASE,
)


def find_address(text: str) -> str | None:
    """A street address: a house number, a few words and a street type, then the rest of the
    sentence (city, postcode). Good enough to capture what the caller said for a human to
    check; not a postal validation."""
    found = _ADDRESS.search(text)
    if found is None:
        return None
    return found.group(0).strip().rstrip(".,")


_GO_BACK = _words(
    "go back",
    "back to",
    "change my",
    "fix my",
    "correct my",
    "update my",
    "that's wrong",
    "that was wrong",
    "that is wrong",
    "is wrong",
    "wrong email",
    "wrong address",
    "made a mistake",
    "typo",
    "i meant",
)
_MENTIONS_EMAIL = _words("email", "e-mail", "mail address")
_MENTIONS_ADDRESS = _words("address", "street", "shipping", "postcode", "zip")


def wants_to_go_back(text: str) -> bool:
    return bool(_GO_BACK.search(normalise(text)))


def correction_targets(text: str) -> list[str]:
    """Which earlier intake steps a correction names, in the order the caller said them."""
    t = normalise(text)
    hits: list[tuple[int, str]] = []
    if m := _MENTIONS_EMAIL.search(t):
        hits.append((m.start(), "email"))
    if m := _MENTIONS_ADDRESS.search(t):
        hits.append((m.start(), "address"))
    return [name for _, name in sorted(hits)]


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


_REFUND = _words("refund", "refunded", "credit", "money back", "compensation", "reimburse")


def asks_for_refund(text: str) -> bool:
    return bool(_REFUND.search(normalise(text)))


_AMOUNT = re.compile(
    r"(?:\$|£|€)\s?(\d{1,6}(?:\.\d{1,2})?)|(\d{1,6}(?:\.\d{1,2})?)\s?(?:dollars|usd)"
)


def find_amount(text: str) -> float | None:
    """A money amount ("$120", "120 dollars")."""
    found = _AMOUNT.search(text.lower())
    if found is None:
        return None
    return float(found.group(1) or found.group(2))


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


_ORDER = _words("buy", "order", "purchase", "i'll take", "sign me up", "get the", "want the")


def wants_to_order(text: str) -> bool:
    return bool(_ORDER.search(normalise(text)))
