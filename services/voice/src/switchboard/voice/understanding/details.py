"""Details the caller gives: an email address, a street address, corrections to them."""

from __future__ import annotations

import re

from switchboard.voice.understanding.text import normalise
from switchboard.voice.understanding.text import words as _words

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
