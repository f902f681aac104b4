"""Shared text handling for the readers: normalising an utterance, word patterns."""

from __future__ import annotations

import re


def words(*patterns: str) -> re.Pattern[str]:
    """A pattern matching any of ``patterns`` as whole words, ignoring case."""
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


def normalise(text: str) -> str:
    """Lower-case, straight apostrophes, single spaces."""
    return " ".join(text.replace("’", "'").lower().split())
