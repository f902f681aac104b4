"""A model for the scripted OpenAI-compatible server that answers like the rules brain.

``rules_policy()`` reads each chat request the way a model would (the history, the tools
offered, ``tool_choice``) and answers from the voice worker's decision table
(``switchboard.voice.brain.decisions``), so every scenario can run through the real
``livekit-plugins-openai`` LLM, over HTTP, against ``OpenAIServer`` — the path a deployment
with a model takes — and still be deterministic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from livekit.agents import llm

from switchboard.testing.openai_server import (
    ChatRequest,
    Message,
    OpenAIServer,
    Reply,
    call,
    calls,
    say,
)
from switchboard.testing.openai_server.policy import ChatPolicy
from switchboard.voice.brain import decisions


def chat_context(messages: tuple[Message, ...]) -> llm.ChatContext:
    """The livekit chat context an OpenAI message list stands for."""
    ctx = llm.ChatContext.empty()
    names: dict[str, str] = {}
    for message in messages:
        if message.role in ("system", "developer", "user"):
            role = "system" if message.role == "developer" else message.role
            ctx.add_message(role=role, content=message.text)
        elif message.role == "assistant":
            if message.text:
                ctx.add_message(role="assistant", content=message.text)
            for tool_call in message.tool_calls:
                names[tool_call.id] = tool_call.name
                ctx.items.append(
                    llm.FunctionCall(
                        call_id=tool_call.id,
                        name=tool_call.name,
                        arguments=tool_call.function.arguments,
                    )
                )
        elif message.role == "tool" and message.tool_call_id is not None:
            ctx.items.append(
                llm.FunctionCallOutput(
                    call_id=message.tool_call_id,
                    name=names.get(message.tool_call_id, ""),
                    output=message.text,
                    is_error=False,
                )
            )
    return ctx


def _arguments(request: ChatRequest, name: str, given: dict[str, Any]) -> dict[str, Any]:
    # Strict schemas make every parameter required; null means "use the default".
    out: dict[str, Any] = dict.fromkeys(request.tool(name).properties, None)
    out.update(given)
    return out


def rules_policy(*, authority: bool = True) -> ChatPolicy:
    """A chat policy that decides like ``RulesBrain(authority=authority)``."""

    def policy(request: ChatRequest) -> Reply:
        offered: dict[str, Any] = {t.name: t.parameters for t in request.tools}
        if request.tool_choice == "none":
            offered = {}
        elif (forced := request.forced_tool) is not None:
            offered = {k: v for k, v in offered.items() if k == forced}
        action = decisions.respond(chat_context(request.messages), offered, authority=authority)
        if isinstance(action, decisions.Say):
            return say(action.text)
        chosen = action.calls if isinstance(action, decisions.CallTools) else (action,)
        return calls(
            *(call(c.name, json.dumps(_arguments(request, c.name, c.arguments))) for c in chosen)
        )

    return policy


async def serve(*, authority: bool = True) -> int:
    """Serve the rules policy on a free port on 127.0.0.1 until SIGTERM or SIGINT; prints
       ``OPENAI_BASE_URL=...`` first::

       python -m switchboard.testing.rules_model &     # prints OPENAI_BASE_URL=http://127.0.0.1:…
       SB_BRAIN=openai OPENAI_API_KEY=test OPENAI_BASE_URL=http://127.0.0.1:…/v1 make demo

    The exit code is 1 if any request was refused or the
       policy failed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with OpenAIServer(rules_policy(authority=authority)) as server:
        print(f"OPENAI_BASE_URL={server.base_url}", flush=True)
        await stop.wait()
        problems = [*server.rejections, *server.failures]
        print(f"Served {len(server.chat_requests)} chat requests.", flush=True)
        for problem in problems:
            print(f"Problem: {problem}", file=sys.stderr, flush=True)
        server.rejections.clear()
        server.failures.clear()
        return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m switchboard.testing.rules_model",
        description="A local OpenAI-compatible server that answers like the rules brain, "
        "for trying the OpenAI path (SB_BRAIN=openai) with no model.",
    )
    parser.add_argument("--safe-mode", action="store_true", help="grant no credits or orders")
    args = parser.parse_args(argv)
    return asyncio.run(serve(authority=not args.safe_mode))


if __name__ == "__main__":
    raise SystemExit(main())
