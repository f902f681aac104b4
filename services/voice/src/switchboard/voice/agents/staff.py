"""What the escalation and transfer flows need from the roster of agents."""

from __future__ import annotations

from typing import Protocol

from livekit.agents import Agent, AgentTask, llm

from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.understanding import Department


class Staff(Protocol):
    """Builds the next agent or task of a call."""

    def triage(self, chat_ctx: llm.ChatContext | None, context: HandoffContext | None) -> Agent: ...

    def specialist(
        self, department: Department, chat_ctx: llm.ChatContext, context: HandoffContext
    ) -> Agent: ...

    def manager(self, chat_ctx: llm.ChatContext, context: HandoffContext) -> Agent: ...

    def callback_offer(self) -> AgentTask[bool]: ...
