"""Who said what: the conversations of one call as they happen.

The caller's session: assistant lines are attributed to the agent that was active when
they were added, which follows the session's ``AgentHandoff`` items (the session's
``current_agent`` already points at the next agent while the old one says its last line).
A consult room's session (a warm transfer's briefing): the human who answered and the
briefing agent, numbered by the dial attempt. Every line of a call is timed from the same
moment as its bus events, so a report can put them in one order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.events import ConversationItemAddedEvent

CALLER = "caller"
HUMAN = "human"
BRIEFING = "briefing"
TASK_GROUP = "task_group"
CALL_SIDE = "call"
CONSULT_SIDE = "consult"


@dataclass(frozen=True, slots=True)
class Line:
    speaker: str
    """``caller``, the id of the agent that spoke, ``human`` or ``briefing``."""
    text: str
    at_s: float
    side: str = CALL_SIDE
    """``call`` (the caller's session) or ``consult`` (a consult room)."""
    attempt: int | None = None
    """Consult room lines: the dial attempt whose human was on the line."""
    heard: bool = True
    """False for caller words said on hold, which reached no agent."""
    note: str = ""
    """Why words were not heard (audio mode), when it is not that the caller was on hold."""


class Transcript:
    """Collects lines and the sequence of agents entered, optionally echoing each line."""

    def __init__(
        self, on_line: Callable[[Line], None] | None = None, t0: float | None = None
    ) -> None:
        self.lines: list[Line] = []
        self.agents: list[str] = []
        self._on_line = on_line
        self._speaker = "agent"
        self.t0 = time.monotonic() if t0 is None else t0

    def attach(self, session: AgentSession[Any]) -> None:
        session.on("conversation_item_added", self._on_item)

    def add(self, line: Line) -> None:
        self.lines.append(line)
        if self._on_line is not None:
            self._on_line(line)

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def unheard(self, text: str) -> None:
        """The caller spoke while on hold and nothing heard it."""
        self.add(Line(speaker=CALLER, text=text, at_s=self.now(), heard=False))

    def unheard_at(self, text: str, at_s: float, note: str) -> None:
        """Audio mode, after the call: words that never became a turn, in time order."""
        line = Line(speaker=CALLER, text=text, at_s=round(at_s, 3), heard=False, note=note)
        at = next((i for i, old in enumerate(self.lines) if old.at_s > line.at_s), None)
        self.lines.insert(len(self.lines) if at is None else at, line)

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
        if not isinstance(item, llm.ChatMessage) or (text := _spoken(item)) is None:
            return
        speaker = CALLER if item.role == "user" else self._speaker
        self.add(Line(speaker=speaker, text=text, at_s=self.now()))


class ConsultTranscript:
    """The lines of one consult room's session, into the call's transcript."""

    def __init__(self, into: Transcript) -> None:
        self._into = into
        self.attempt: int | None = None

    def attach(self, session: AgentSession[Any]) -> None:
        session.on("conversation_item_added", self._on_item)

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or (text := _spoken(item)) is None:
            return
        speaker = HUMAN if item.role == "user" else BRIEFING
        line = Line(
            speaker=speaker,
            text=text,
            at_s=self._into.now(),
            side=CONSULT_SIDE,
            attempt=self.attempt,
        )
        self._into.add(line)


def _spoken(item: llm.ChatMessage) -> str | None:
    if item.role not in ("user", "assistant"):
        return None
    text = (item.text_content or "").strip()
    return text or None
