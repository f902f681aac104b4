"""Saying fixed sentences: handoff lines, acknowledgements, progress while dialling."""

from __future__ import annotations

from typing import Any

from livekit.agents import AgentSession


async def speak(session: AgentSession[Any], text: str, *, interruptible: bool = True) -> None:
    """Say ``text`` and wait until it has been played out (or interrupted, if allowed).

    These sentences come from configuration or the router, never from a model, so the
    caller hears what happens next even when every LLM is down. Transfer lines are not
    interruptible: a caller saying "ok, thanks" must not stop the transfer.
    """
    if text.strip():
        await session.say(text, allow_interruptions=interruptible)
