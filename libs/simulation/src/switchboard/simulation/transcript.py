"""Who said what: the conversation of one session as it happens.

Assistant lines are attributed to the agent that was active when they were added, which
follows the session's ``AgentHandoff`` items (the session's ``current_agent`` already
points at the next agent while the old one says its last line).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.events import ConversationItemAddedEvent

CALLER = "caller"
TASK_GROUP = "task_group"


@dataclass(frozen=True, slots=True)
class Line:
    speaker: str
    """``caller`` or the id of the agent that spoke."""
    text: str
    at_s: float


class Transcript:
    """Collects lines and the sequence of agents entered, optionally echoing each line."""

    def __init__(self, on_line: Callable[[Line], None] | None = None) -> None:
        self.lines: list[Line] = []
        self.agents: list[str] = []
        self._on_line = on_line
        self._speaker = "agent"
        self._t0 = time.monotonic()

    def attach(self, session: AgentSession[Any]) -> None:
        session.on("conversation_item_added", self._on_item)

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, llm.AgentHandoff):
            self._speaker = item.new_agent_id
            # A TaskGroup is a silent container between its steps; listing it adds noise.
            if item.new_agent_id != TASK_GROUP and (
                not self.agents or self.agents[-1] != item.new_agent_id
            ):
                self.agents.append(item.new_agent_id)
            return
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        text = (item.text_content or "").strip()
        if not text:
            return
        speaker = CALLER if item.role == "user" else self._speaker
        line = Line(speaker=speaker, text=text, at_s=round(time.monotonic() - self._t0, 3))
        self.lines.append(line)
        if self._on_line is not None:
            self._on_line(line)
