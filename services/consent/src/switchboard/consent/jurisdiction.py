"""Which jurisdiction a phone number belongs to: country from the calling code, US state
from the area code. Pure lookups over tables shipped as package data.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

UNKNOWN = "unknown"
NANP_CODE = "1"

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s().-]")


def normalize_number(number: str) -> str:
    """Strip the separators people type (spaces, dots, dashes, brackets)."""
    return _SEPARATORS.sub("", number)


def _table(name: str) -> dict[str, str]:
    text = resources.files("switchboard.consent").joinpath("data", name).read_text("utf-8")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split(",", 1)
            out[key.strip()] = value.strip()
    return out


@cache
def calling_codes() -> dict[str, str]:
    """Country calling code (``"49"``) -> ISO 3166-1 country (``"DE"``)."""
    return _table("calling_codes.csv")


@cache
def nanp_area_codes() -> dict[str, str]:
    """NANP area code (``"415"``) -> ``US-CA``, ``US`` (state unknown) or a country."""
    return _table("nanp_area_codes.csv")


def jurisdiction_of(number: str | None) -> str:
    """The jurisdiction of an E.164 number: ``US-CA``, ``DE``, ``US`` or ``unknown``."""
    if not number:
        return UNKNOWN
    digits = normalize_number(number)
    if not _E164.match(digits):
        return UNKNOWN
    digits = digits[1:]
    if digits.startswith(NANP_CODE):
        return nanp_area_codes().get(digits[1:4], UNKNOWN) if len(digits) == 11 else UNKNOWN
    codes = calling_codes()
    # Calling codes are prefix-free, so the first match of length 1..3 is the only one.
    for length in (1, 2, 3):
        found = codes.get(digits[:length])
        if found is not None:
            return found
    return UNKNOWN
