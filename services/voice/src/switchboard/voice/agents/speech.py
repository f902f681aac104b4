"""Saying fixed sentences: handoff lines, acknowledgements, progress while dialling."""

from __future__ import annotations

from typing import Any

from livekit.agents import AgentSession


async def speak(session: AgentSession[Any], text: str) -> None:
    """Say ``text`` and wait until it has been played out or interrupted.

    These sentences come from configuration or the router, never from a model, so the
    caller hears what happens next even when every LLM is down.
    """
    if text.strip():
        await session.say(text)
