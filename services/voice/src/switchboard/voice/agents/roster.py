"""The roster: builds every agent and task of a call (implements ``Staff``)."""

from __future__ import annotations

from livekit.agents import Agent, AgentTask, llm

from switchboard.contracts.handoff import HandoffContext
from switchboard.voice.agents.callback import CallbackOfferTask
from switchboard.voice.agents.manager import ManagerAgent
from switchboard.voice.agents.specialists import BillingAgent, SalesAgent, SupportAgent
from switchboard.voice.agents.triage import TriageAgent
from switchboard.voice.call import Call
from switchboard.voice.understanding import Department


class Roster:
    """The agents of one call, all sharing its ``Call`` state."""

    def __init__(self, call: Call) -> None:
        self._call = call

    def triage(
        self, chat_ctx: llm.ChatContext | None = None, context: HandoffContext | None = None
    ) -> Agent:
        return TriageAgent(self._call, self, chat_ctx, context)

    def specialist(
        self, department: Department, chat_ctx: llm.ChatContext, context: HandoffContext
    ) -> Agent:
        cls = {"billing": BillingAgent, "support": SupportAgent, "sales": SalesAgent}[department]
        return cls(self._call, self, chat_ctx, context)

    def manager(self, chat_ctx: llm.ChatContext, context: HandoffContext) -> Agent:
        return ManagerAgent(self._call, self, chat_ctx, context)

    def callback_offer(self) -> AgentTask[bool]:
        return CallbackOfferTask(self._call)
