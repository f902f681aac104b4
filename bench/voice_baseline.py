"""The baseline of the voice benchmark: bare livekit-agents, nothing of Switchboard.

One text-mode ``AgentSession`` per call (no room, no audio, no turn detector), one agent
with one tool, and a deterministic ``llm.LLM`` that answers every caller turn the way the
rules brain's cheapest turns do: one tool call, then a short reply saying what the tool
returned. No NATS, no services, no screening, no events. What a turn costs here is what
livekit-agents itself costs, which the Switchboard pass is compared with in the same run.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from livekit.agents import Agent, AgentSession, APIConnectOptions, llm
from livekit.agents.llm import function_tool
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.voice.turn import TurnHandlingOptions


class OneToolLLM(llm.LLM[Literal["metrics_collected", "error"]]):
    """A caller turn gets one tool call; the tool's output gets a short reply."""

    @property
    def model(self) -> str:
        return "bench-one-tool"

    @property
    def provider(self) -> str:
        return "bench"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        return _Answer(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _Answer(llm.LLMStream):
    async def _run(self) -> None:
        last = self._chat_ctx.items[-1] if self._chat_ctx.items else None
        if isinstance(last, llm.ChatMessage) and last.role == "user":
            delta = llm.ChoiceDelta(
                role="assistant",
                tool_calls=[
                    llm.FunctionToolCall(
                        name="look_up",
                        arguments=json.dumps({"query": (last.text_content or "")[:64]}),
                        call_id=f"call_{uuid.uuid4().hex[:16]}",
                    )
                ],
            )
        else:
            text = last.output if isinstance(last, llm.FunctionCallOutput) else "Go on."
            delta = llm.ChoiceDelta(role="assistant", content=f"Here is what I found: {text}")
        self._event_ch.send_nowait(llm.ChatChunk(id=f"bench-{uuid.uuid4().hex[:12]}", delta=delta))


class Desk(Agent):
    """The one agent of a baseline call."""

    def __init__(self) -> None:
        super().__init__(instructions="Answer the caller with what the tool returns.")

    @function_tool
    async def look_up(self, query: str) -> str:
        """Look up what the caller asked about.

        Args:
            query: What the caller asked.
        """
        return f"the answer about {query[:16]}"


async def start_session(brain: llm.LLM[Any]) -> AgentSession[None]:
    """A started text-mode session, ready for ``session.run``."""
    session = AgentSession[None](
        llm=brain, vad=None, turn_handling=TurnHandlingOptions(turn_detection=None)
    )
    await session.start(Desk(), record=False)
    return session
