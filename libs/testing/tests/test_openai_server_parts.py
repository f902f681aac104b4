"""The scripted OpenAI server's framing, refusals, scripts, logs, fault plan and fixture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import httpx2
import openai as openai_client
import pytest
from livekit.agents import APIConnectOptions, APIStatusError, llm
from livekit.agents.llm import function_tool
from livekit.plugins import openai
from pydantic import BaseModel

from switchboard.testing.openai_server import (
    CutStream,
    Delay,
    HttpError,
    MalformedChunk,
    OpenAIServer,
    Reply,
    Script,
    ScriptExhausted,
    Speech,
    call,
    calls,
    say,
)
from switchboard.testing.openai_server.faults import FaultPlan
from switchboard.testing.openai_server.log import RequestLog
from switchboard.testing.openai_server.validation import strict_schema_problem
from switchboard.testing.openai_server.wire import text_pieces

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server(openai_server: OpenAIServer) -> OpenAIServer:
    """The plugin's server: started, checked at teardown, OPENAI_BASE_URL pointing at it."""
    return openai_server


@pytest.fixture
async def http(server: OpenAIServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=5.0) as client:
        yield client


def events(body: bytes) -> list[str]:
    """The data of each server-sent event; asserts the framing is exactly OpenAI's."""
    assert body.endswith(b"\n\n")
    frames = body.decode().split("\n\n")[:-1]
    assert all(frame.startswith("data: ") and "\n" not in frame for frame in frames)
    return [frame.removeprefix("data: ") for frame in frames]


# --- framing ------------------------------------------------------------------------------


async def test_a_streamed_reply_is_sse_chunks_then_usage_then_done(
    server: OpenAIServer, http: httpx2.AsyncClient
) -> None:
    server.policy = Script([calls(call("lookup", {"order_id": "A7"}), text="On it.")])
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    body = {
        "model": "gpt-4.1",
        "messages": USER,
        "tools": tools,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await http.post("/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["x-request-id"] == "req_sb_chat_000001"
    data = events(response.content)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["id"] for c in chunks} == {"chatcmpl-sb000001"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"gpt-4.1"}
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert [d["content"] for d in deltas[1:3]] == ["On", " it."]
    opening = deltas[3]["tool_calls"][0]
    assert opening == {
        "index": 0,
        "id": "call_sb000001_0",
        "type": "function",
        "function": {"name": "lookup", "arguments": ""},
    }
    pieces = [d["tool_calls"][0] for d in deltas[4:-1]]
    assert all(set(p) == {"index", "function"} and p["index"] == 0 for p in pieces)
    assert len(pieces) == 3  # '{"order_id": "A7"}' in pieces of 8 characters
    assert "".join(p["function"]["arguments"] for p in pieces) == '{"order_id": "A7"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_without_include_usage_there_is_no_usage_chunk(
    server: OpenAIServer, http: httpx2.AsyncClient
) -> None:
    server.policy = Script([Reply(text="Hi.", finish_reason="length")])
    response = await http.post(
        "/chat/completions", json={"model": "m", "messages": USER, "stream": True}
    )
    chunks = [json.loads(d) for d in events(response.content)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "text", ["", "one", "Hello there, friend.", "  leading", "trailing  ", "two\nlines\n"]
)
def test_text_pieces_put_together_give_the_text_back(text: str) -> None:
    pieces = text_pieces(text)
    assert "".join(pieces) == text
    assert all(piece for piece in pieces)


async def test_error_bodies_and_unknown_paths_are_openai_shaped(
    server: OpenAIServer, http: httpx2.AsyncClient
) -> None:
    server.policy = Script([HttpError.rate_limited(retry_after=2)])
    limited = await http.post("/chat/completions", json={"model": "m", "messages": USER})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json() == {
        "error": {
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    missing = await http.get("/assistants")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (GET /v1/assistants)"


@pytest.mark.parametrize("fault", [CutStream(), MalformedChunk()], ids=["cut", "malformed"])
async def test_faults_on_a_non_streamed_completion_fail_the_client(
    server: OpenAIServer, fault: CutStream | MalformedChunk
) -> None:
    server.policy = Script([fault])
    async with openai_client.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=0
    ) as client:
        with pytest.raises((openai_client.APIConnectionError, json.JSONDecodeError)):
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )


# --- refusals -----------------------------------------------------------------------------


class Department(StrEnum):
    billing = "billing"
    sales = "sales"


class Address(BaseModel):
    street: str
    city: str | None = None


@function_tool
async def complicated(
    department: Department, address: Address, tags: list[str], note: str | None = None
) -> str:
    """A tool with nested, optional, enum and list parameters."""
    return "ok"


def test_livekit_strict_schemas_pass_the_strict_check() -> None:
    [schema] = llm.ToolContext([complicated]).parse_function_tools("openai", strict=True)
    assert schema["function"]["strict"] is True
    assert strict_schema_problem(schema["function"]["parameters"]) is None


def test_a_schema_that_is_not_strict_is_explained() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "object", "properties": {"c": {"type": "string"}}, "required": ["c"]},
        },
        "required": ["a", "b"],
    }
    assert strict_schema_problem(schema) == (
        "In context=('properties', 'b'), 'additionalProperties' is required to be supplied "
        "and to be false."
    )
    schema["properties"]["b"]["additionalProperties"] = False
    schema["required"] = ["a"]
    assert strict_schema_problem(schema) == (
        "In context=(), 'required' is required to be supplied and to be an array including "
        "every key in properties. Missing 'b'."
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "m", "messages": USER, "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        ({"model": "m", "messages": USER, "tool_choice": "auto"}, "tool_choice"),
        ({"model": "m", "messages": USER, "parallel_tool_calls": False}, "parallel_tool_calls"),
        (
            {
                "model": "m",
                "messages": USER,
                "tools": [{"type": "function", "function": {"name": "has space"}}],
            },
            "tools[0].function.name",
        ),
        (
            {
                "model": "m",
                "messages": USER,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "strict": True,
                            "parameters": {"type": "object", "properties": {"x": {}}},
                        },
                    }
                ],
            },
            "tools[0].function.parameters",
        ),
    ],
    ids=[
        "no-messages",
        "bad-role",
        "stream-options-without-stream",
        "tool-choice-without-tools",
        "parallel-without-tools",
        "bad-tool-name",
        "loose-strict-schema",
    ],
)
async def test_requests_the_real_api_refuses_get_a_400_naming_the_param(
    server: OpenAIServer, http: httpx2.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await http.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert [r.param for r in server.rejections] == [param]
    assert len(server.chat_requests) == 0
    server.rejections.clear()


async def test_the_plugin_sends_parallel_tool_calls_without_tools_which_openai_refuses(
    server: OpenAIServer,
) -> None:
    # livekit drops tool_choice when a request has no tools, but not parallel_tool_calls.
    plugin = openai.LLM(base_url=server.base_url, api_key="test", parallel_tool_calls=False)
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content="hi")
    try:
        stream = plugin.chat(chat_ctx=ctx, conn_options=APIConnectOptions(max_retry=0))
        with pytest.raises(APIStatusError, match="only allowed when 'tools' are specified"):
            await stream.collect()
    finally:
        await plugin.aclose()
    server.rejections.clear()


async def test_an_api_key_is_enforced_when_set() -> None:
    async with OpenAIServer(Script([say("hi")]), api_key="sk-right") as server:
        for key in ("sk-wrong", "sk-right"):
            client = openai_client.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0)
            async with client:
                if key == "sk-wrong":
                    with pytest.raises(openai_client.AuthenticationError):
                        await client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": "hi"}]
                        )
                else:
                    done = await client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "hi"}]
                    )
                    assert done.choices[0].message.content == "hi"
        assert [(r.status, r.endpoint) for r in server.rejections] == [(401, "chat")]
        server.rejections.clear()


async def test_a_policy_answering_the_wrong_kind_is_a_recorded_failure(
    server: OpenAIServer, http: httpx2.AsyncClient
) -> None:
    server.policy = Script([Speech(seconds=1)])
    response = await http.post("/chat/completions", json={"model": "m", "messages": USER})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "policy_failed"
    [failure] = server.failures
    assert "this endpoint takes Reply or a fault" in failure.error
    server.failures.clear()


# --- scripts, logs, the fault plan, lifecycle ---------------------------------------------


class _Req:
    def __init__(self, number: int) -> None:
        self.number = number

    def summary(self) -> str:
        return f"req #{self.number}"


def test_a_script_answers_in_order_and_names_the_request_it_cannot_answer() -> None:
    script = Script([say("a"), "b"], name="greeter")
    assert script(_Req(1)) == say("a")
    with pytest.raises(AssertionError, match="greeter: 1 answer"):
        script.assert_used_up()
    assert script(_Req(2)) == "b"
    script.assert_used_up()
    with pytest.raises(
        ScriptExhausted, match=r"unanswered: req #3. Answered before: req #1; req #2"
    ):
        script(_Req(3))


async def test_a_log_wait_resolves_when_the_request_arrives() -> None:
    log: RequestLog[_Req] = RequestLog("thing")
    waiting = asyncio.create_task(log.wait_for(2, timeout=5))
    log.append(_Req(1))
    await asyncio.sleep(0)  # let the waiter run once: it must still be waiting
    assert not waiting.done()
    log.append(_Req(2))
    assert (await waiting).number == 2
    assert (await log.wait_for(1)).number == 1
    with pytest.raises(ValueError, match="1-based"):
        await log.wait_for(0)


def test_the_fault_plan_prefers_numbered_faults_and_filters_outages() -> None:
    plan = FaultPlan()
    plan.fail(2, CutStream())
    assert plan.fault_for("chat", 2, "gpt-4.1") == CutStream()
    assert plan.fault_for("chat", 1, "gpt-4.1") is None
    assert plan.fault_for("speech", 2, "tts-1") is None
    with plan.outage(endpoints={"chat"}, models={"gpt-4.1"}):
        assert plan.fault_for("chat", 1, "gpt-4.1") == HttpError.unavailable()
        assert plan.fault_for("chat", 1, "gpt-4.1-mini") is None
        assert plan.fault_for("speech", 1, "gpt-4.1") is None
        assert plan.fault_for("chat", 2, "gpt-4.1") == CutStream()
    assert not plan.in_outage


async def test_stopping_the_server_ends_a_stalled_request_at_once(server: OpenAIServer) -> None:
    server.policy = Script([Delay(600)])
    async with httpx2.AsyncClient(timeout=30.0) as client:
        stalled = asyncio.create_task(
            client.post(
                f"{server.base_url}/chat/completions", json={"model": "m", "messages": USER}
            )
        )
        await server.chat_requests.wait_for(1)
        async with asyncio.timeout(5):
            await server.stop()
            with pytest.raises(httpx2.RemoteProtocolError):
                await stalled


async def test_the_fixture_points_openai_clients_here_by_environment(
    openai_server: OpenAIServer,
) -> None:
    openai_server.policy = Script([say("from the fixture")])
    async with openai_client.AsyncOpenAI(max_retries=0) as client:
        assert str(client.base_url) == openai_server.base_url + "/"
        models = [model.id async for model in client.models.list()]
        done = await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
        )
    assert "gpt-4.1" in models
    assert done.choices[0].message.content == "from the fixture"
    assert openai_server.chat_requests[0].headers["Authorization"] == "Bearer test"
