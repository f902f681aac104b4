"""Agent instructions, kept as Markdown files in ``prompts/`` (package data).

Prompts change more often than code and are reviewed by people who do not read Python,
so they live in plain files; this module only loads and combines them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The text of ``prompts/<name>.md``."""
    return resources.files("switchboard.voice").joinpath("prompts", f"{name}.md").read_text("utf-8")


def instructions(name: str) -> str:
    """An agent's full instructions: the shared rules, then its own."""
    return f"{load('common')}\n{load(name)}"
