"""``RulesBrain``: a deterministic ``llm.LLM`` that needs no model and no network.

It is the default LLM when no provider credentials are set (a fresh machine runs whole
calls with it) and the last entry of the production ``FallbackAdapter``, so consent,
escalation and goodbyes keep working during a provider outage. It never pretends to be a
model: its ``model``/``provider`` names and its log lines say what it is.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal

from livekit.agents import APIConnectOptions, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from switchboard.voice.brain import decisions

log = logging.getLogger(__name__)

BRAIN_MODEL = "switchboard-rules-brain"
BRAIN_PROVIDER = "switchboard (deterministic rules, no AI model)"


class RulesBrain(llm.LLM[Literal["metrics_collected", "error"]]):
    """Answers each request from :mod:`~switchboard.voice.brain.decisions`; calls the
    tools on offer."""

    def __init__(self) -> None:
        super().__init__()
        self._label = "switchboard.voice.RulesBrain"

    @property
    def model(self) -> str:
        return BRAIN_MODEL

    @property
    def provider(self) -> str:
        return BRAIN_PROVIDER

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> RulesStream:
        return RulesStream(
            self,
            chat_ctx=chat_ctx,
            tools=_offered(tools or [], tool_choice),
            conn_options=conn_options,
        )


def _offered(tools: list[llm.Tool], tool_choice: NotGivenOr[llm.ToolChoice]) -> list[llm.Tool]:
    """Honour ``tool_choice`` like a model would: ``none`` (set for replies generated inside
    a tool) means text only; a named function means only that one."""
    if tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        return [t for t in tools if t.id == name]
    return list(tools)


class RulesStream(llm.LLMStream):
    """One answer: a single chunk with either text or one tool call."""

    async def _run(self) -> None:
        action = decisions.respond(self._chat_ctx, self._tools)
        request_id = f"rules-{uuid.uuid4().hex[:12]}"
        if isinstance(action, decisions.CallTool):
            log.info(
                "Rules brain called a tool.",
                extra={"llm": BRAIN_MODEL, "tool": action.name},
            )
            delta = llm.ChoiceDelta(
                role="assistant",
                tool_calls=[
                    llm.FunctionToolCall(
                        name=action.name,
                        arguments=json.dumps(action.arguments),
                        call_id=f"call_{uuid.uuid4().hex[:16]}",
                    )
                ],
            )
        else:
            log.info("Rules brain answered with text.", extra={"llm": BRAIN_MODEL})
            delta = llm.ChoiceDelta(role="assistant", content=action.text)
        self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=delta))
