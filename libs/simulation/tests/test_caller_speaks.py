"""Words the caller says between turns, when the agents cannot take them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from livekit.agents import AgentSession

from switchboard.simulation.runner import caller_speaks
from switchboard.simulation.transcript import Transcript
from switchboard.voice.call import Call


class SwitchingSession:
    """An interrupt that succeeds, then a reply refused because the agent in charge
    changed meanwhile (livekit raises this while an activity drains for a handoff)."""

    def __init__(self) -> None:
        self.replies: list[str] = []

    async def interrupt(self) -> None:
        return None

    def generate_reply(self, *, user_input: str) -> None:
        raise RuntimeError(
            "cannot schedule new speech, the speech scheduling is draining/pausing, "
            "the speech will be cancelled"
        )


async def test_words_said_as_the_agents_switch_are_unheard_not_a_failed_call() -> None:
    """Found by the 10,000-call chaos run: a caller speaking during a transfer whose
    bridge had just been killed spoke as the flow switched to the callback offer; the
    refused reply ended the scripted call as failed. Text mode has no audio for the next
    agent to hear, so the words are unheard, as when the interrupt itself is refused."""
    transcript = Transcript()
    call = cast(Call, SimpleNamespace(state=SimpleNamespace(on_hold=False)))
    session = cast(AgentSession[Any], SwitchingSession())
    await caller_speaks(session, call, "Are you still there?", transcript)
    assert [(line.text, line.heard) for line in transcript.lines] == [
        ("Are you still there?", False)
    ]
