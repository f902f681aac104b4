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
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from livekit.agents import APIConnectOptions, llm
from livekit.agents.llm.utils import build_legacy_openai_schema
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from switchboard.voice.brain import decisions

log = logging.getLogger(__name__)

BRAIN_MODEL = "switchboard-rules-brain"
BRAIN_PROVIDER = "switchboard (deterministic rules, no AI model)"


NOT_UNDERSTOOD: Final = "rules-not-understood-"
"""Id prefix of an answer to a turn the brain could not act on (the agent counts it)."""


class RulesBrain(llm.LLM[Literal["metrics_collected", "error"]]):
    """Answers each request from :mod:`~switchboard.voice.brain.decisions`; calls the
    tools on offer.

    ``authority=False`` is safe mode, for when it stands in for a model that is down: it
    grants no credits and places no orders, and offers a person instead.
    """

    def __init__(self, *, authority: bool = True) -> None:
        super().__init__()
        self._label = "switchboard.voice.RulesBrain"
        self.authority = authority

    @property
    def model(self) -> str:
        return BRAIN_MODEL if self.authority else f"{BRAIN_MODEL} (safe mode)"

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
            tools=_allowed(tools or [], tool_choice),
            conn_options=conn_options,
        )


def _allowed(tools: list[llm.Tool], tool_choice: NotGivenOr[llm.ToolChoice]) -> list[llm.Tool]:
    """Honour ``tool_choice`` like a model would: ``none`` (set for replies generated inside
    a tool) means text only; a named function means only that one."""
    if tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        return [t for t in tools if t.id == name]
    return list(tools)


def offered(tools: list[llm.Tool]) -> decisions.Offered:
    """Tool name → JSON schema of its parameters, as a model would see them."""
    out: dict[str, Any] = {}
    for tool in tools:
        if isinstance(tool, llm.FunctionTool):
            out[tool.id] = _parameters(tool)
        elif isinstance(tool, llm.RawFunctionTool):
            out[tool.id] = tool.info.raw_schema.get("parameters", {})
    return out


_SCHEMAS: weakref.WeakKeyDictionary[Callable[..., Any], Mapping[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def _parameters(tool: llm.FunctionTool[..., Any]) -> Mapping[str, Any]:
    # Building a schema makes a pydantic model: about 3 ms, a third of the brain's CPU per
    # turn when done on every request. The schema depends only on the function: every
    # agent of a class shares it, and TaskGroup's go-back tool is a new closure per step
    # (a new key, dropped with the closure), so it is built once per function.
    func = tool._func
    found = _SCHEMAS.get(func)
    if found is None:
        found = _SCHEMAS[func] = build_legacy_openai_schema(tool)["function"]["parameters"]
    return found


class RulesStream(llm.LLMStream):
    """One answer: a single chunk with text or tool calls."""

    async def _run(self) -> None:
        brain = self._llm
        authority = brain.authority if isinstance(brain, RulesBrain) else True
        action = decisions.respond(self._chat_ctx, offered(self._tools), authority=authority)
        request_id = f"rules-{uuid.uuid4().hex[:12]}"
        if isinstance(action, decisions.CallTool | decisions.CallTools):
            calls = action.calls if isinstance(action, decisions.CallTools) else (action,)
            log.info(
                "Rules brain called tools.",
                extra={"llm": BRAIN_MODEL, "tools": [c.name for c in calls]},
            )
            delta = llm.ChoiceDelta(
                role="assistant",
                tool_calls=[
                    llm.FunctionToolCall(
                        name=call.name,
                        arguments=json.dumps(call.arguments),
                        call_id=f"call_{uuid.uuid4().hex[:16]}",
                    )
                    for call in calls
                ],
            )
        else:
            log.info(
                "Rules brain answered with text.",
                extra={"llm": BRAIN_MODEL, "understood": action.understood},
            )
            delta = llm.ChoiceDelta(role="assistant", content=action.text)
            if not action.understood:
                request_id = f"{NOT_UNDERSTOOD}{uuid.uuid4().hex[:12]}"
        self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=delta))
