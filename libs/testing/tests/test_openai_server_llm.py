"""The scripted OpenAI server driven by the real ``livekit.plugins.openai.LLM``.

Replies, the request log and every fault are checked through the plugin and the openai
client it wraps, so what passes here is what the voice worker's models will see.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    llm,
)
from livekit.agents.llm import function_tool
from livekit.plugins import openai
from openai import BadRequestError

from switchboard.testing.openai_server import (
    ChatRequest,
    CutStream,
    Delay,
    HttpError,
    MalformedChunk,
    OpenAIServer,
    Reply,
    Script,
    StreamError,
    call,
    calls,
    say,
)

NO_RETRY = APIConnectOptions(max_retry=0, retry_interval=0, timeout=5.0)
ONE_RETRY = APIConnectOptions(max_retry=1, retry_interval=0, timeout=5.0)


@function_tool
async def lookup_order(order_id: str, include_items: bool = False) -> str:
    """Look up an order by its id."""
    return f"order {order_id}"


@function_tool
async def transfer_call(department: str) -> str:
    """Transfer the caller to a department."""
    return f"transferring to {department}"


@dataclass
class Collected:
    text: str = ""
    calls: list[llm.FunctionToolCall] = field(default_factory=list)
    usage: list[llm.CompletionUsage] = field(default_factory=list)


async def collect(stream: llm.LLMStream, into: Collected | None = None) -> Collected:
    """Everything a stream delivers; ``into`` keeps what arrived before an error."""
    out = into if into is not None else Collected()
    async with stream:
        async for chunk in stream:
            if chunk.delta is not None:
                out.text += chunk.delta.content or ""
                out.calls.extend(chunk.delta.tool_calls)
            if chunk.usage is not None:
                out.usage.append(chunk.usage)
    return out


def conversation(user_text: str = "Where is my order A7?") -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You are the Switchboard help line.")
    ctx.add_message(role="user", content=user_text)
    return ctx


@pytest.fixture
def server(openai_server: OpenAIServer) -> OpenAIServer:
    """The plugin's server: started, checked at teardown, OPENAI_BASE_URL pointing at it."""
    return openai_server


@pytest.fixture
async def model(server: OpenAIServer) -> AsyncIterator[openai.LLM]:
    plugin = openai.LLM(model="gpt-4.1", base_url=server.base_url, api_key="test")
    try:
        yield plugin
    finally:
        await plugin.aclose()


# --- replies ------------------------------------------------------------------------------


async def test_text_arrives_in_several_deltas_with_usage(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script([say("Your order ships tomorrow morning.")])
    deltas: list[str] = []
    async with model.chat(chat_ctx=conversation(), conn_options=NO_RETRY) as stream:
        async for chunk in stream:
            if chunk.delta is not None and chunk.delta.content:
                deltas.append(chunk.delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
    assert "".join(deltas) == "Your order ships tomorrow morning."
    assert len(deltas) == 5
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_a_tool_call_arrives_with_its_arguments_parsed(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script([calls(call("lookup_order", {"order_id": "A7", "include_items": True}))])
    got = await collect(
        model.chat(chat_ctx=conversation(), tools=[lookup_order], conn_options=NO_RETRY)
    )
    assert got.text == ""
    [tool_call] = got.calls
    assert tool_call.name == "lookup_order"
    assert json.loads(tool_call.arguments) == {"order_id": "A7", "include_items": True}
    assert tool_call.call_id == "call_sb000001_0"


async def test_text_then_two_tool_calls_in_one_reply(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script(
        [
            calls(
                call("lookup_order", {"order_id": "A7", "include_items": None}),
                call("transfer_call", {"department": "billing"}, id="call_custom"),
                text="Let me check that for you.",
            )
        ]
    )
    got = await collect(
        model.chat(
            chat_ctx=conversation(), tools=[lookup_order, transfer_call], conn_options=NO_RETRY
        )
    )
    assert got.text == "Let me check that for you."
    assert [(c.name, json.loads(c.arguments), c.call_id) for c in got.calls] == [
        ("lookup_order", {"order_id": "A7", "include_items": None}, "call_sb000001_0"),
        ("transfer_call", {"department": "billing"}, "call_custom"),
    ]


async def test_a_non_streamed_completion_carries_the_same_reply(server: OpenAIServer) -> None:
    server.policy = Script(
        [calls(call("transfer_call", {"department": "sales"}), text="One moment.")]
    )
    client = openai.LLM(base_url=server.base_url, api_key="test")._client
    try:
        completion = await client.chat.completions.create(
            model="gpt-4.1",
            messages=[{"role": "user", "content": "sales please"}],
            tools=[
                {
                    "type": "function",
                    "function": {"name": "transfer_call", "parameters": {"type": "object"}},
                }
            ],
        )
    finally:
        await client.close()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "One moment."
    assert choice.message.tool_calls is not None
    [tool_call] = choice.message.tool_calls
    assert tool_call.type == "function"
    assert (tool_call.function.name, tool_call.function.arguments) == (
        "transfer_call",
        '{"department": "sales"}',
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert server.chat_requests[0].stream is False


async def test_a_slow_answer_the_agent_interrupts_ends_cleanly(
    server: OpenAIServer, model: openai.LLM
) -> None:
    # What a barge-in does: the agent stops reading a slow answer and asks again.
    slow = Reply(text=" ".join(["word"] * 200), interval=0.05)
    server.policy = Script([slow, say("after the interruption")])
    received = 0
    async with model.chat(chat_ctx=conversation(), conn_options=NO_RETRY) as stream:
        async for chunk in stream:
            if chunk.delta is not None and chunk.delta.content:
                received += 1
            if received == 3:
                break
    got = await collect(model.chat(chat_ctx=conversation(), conn_options=NO_RETRY))
    assert got.text == "after the interruption"
    assert received == 3
    assert server.failures == []


# --- the request log ----------------------------------------------------------------------


async def test_the_log_shows_tools_tool_choice_and_the_history_with_tool_results(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script(
        [calls(call("lookup_order", {"order_id": "A7", "include_items": None})), say("It ships.")]
    )
    ctx = conversation()
    first = await collect(
        model.chat(
            chat_ctx=ctx,
            tools=[lookup_order, transfer_call],
            tool_choice="required",
            parallel_tool_calls=False,
            conn_options=NO_RETRY,
        )
    )
    [made] = first.calls
    # What the agent loop does after running the tool: the call and its output join the
    # history and the model is asked again.
    ctx.insert(llm.FunctionCall(call_id=made.call_id, name=made.name, arguments=made.arguments))
    ctx.insert(
        llm.FunctionCallOutput(
            call_id=made.call_id, name=made.name, output="ships tomorrow", is_error=False
        )
    )
    await collect(
        model.chat(
            chat_ctx=ctx,
            tools=[lookup_order, transfer_call],
            tool_choice="auto",
            conn_options=NO_RETRY,
        )
    )

    asked = await server.chat_requests.wait_for(1)
    assert asked.model == "gpt-4.1"
    assert asked.stream
    assert asked.include_usage
    assert asked.tool_names == ["lookup_order", "transfer_call"]
    assert asked.tool_choice == "required"
    assert asked.parallel_tool_calls is False
    spec = asked.tool("lookup_order")
    assert spec.description == "Look up an order by its id."
    assert spec.strict is True
    assert spec.required == ["order_id", "include_items"]
    assert spec.properties["include_items"] == {"type": ["boolean", "null"]}
    assert [(m.role, m.text) for m in asked.messages] == [
        ("system", "You are the Switchboard help line."),
        ("user", "Where is my order A7?"),
    ]
    assert asked.instructions == "You are the Switchboard help line."

    again = await server.chat_requests.wait_for(2)
    assert again.tool_choice == "auto"
    assert [m.role for m in again.messages] == ["system", "user", "assistant", "tool"]
    assistant, result = again.messages[2], again.messages[3]
    [earlier] = assistant.tool_calls
    assert (earlier.id, earlier.name, earlier.args()) == (
        made.call_id,
        "lookup_order",
        {"order_id": "A7", "include_items": None},
    )
    assert (result.tool_call_id, result.text) == (made.call_id, "ships tomorrow")
    assert again.tool_results == [result]


async def test_a_named_tool_choice_is_logged_and_a_reply_ignoring_it_fails(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script([say("I will not call it.")])
    with pytest.raises(APIStatusError):
        await collect(
            model.chat(
                chat_ctx=conversation(),
                tools=[lookup_order, transfer_call],
                tool_choice={"type": "function", "function": {"name": "transfer_call"}},
                conn_options=NO_RETRY,
            )
        )
    assert server.chat_requests[0].forced_tool == "transfer_call"
    [failure] = server.failures
    assert "demands a tool call" in failure.error
    server.failures.clear()


async def test_waiting_for_a_request_that_never_comes_says_what_did(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script([say("Hi.")])
    await collect(model.chat(chat_ctx=conversation("hello"), conn_options=NO_RETRY))
    with pytest.raises(TimeoutError, match=r"chat request #2; 1 arrived: chat #1 .*'hello'"):
        await server.chat_requests.wait_for(2, timeout=0.05)


# --- faults -------------------------------------------------------------------------------


async def test_a_500_is_a_retryable_status_error_with_the_openai_body(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script([HttpError.server_error()])
    with pytest.raises(APIStatusError) as caught:
        await collect(model.chat(chat_ctx=conversation(), conn_options=NO_RETRY))
    assert caught.value.status_code == 500
    assert caught.value.retryable is True
    assert caught.value.request_id == "req_sb_chat_000001"
    assert caught.value.body == {
        "message": HttpError().message,
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_a_429_is_retryable_and_a_400_is_not(server: OpenAIServer, model: openai.LLM) -> None:
    server.policy = Script(
        [HttpError.rate_limited(), HttpError(status=400, type="invalid_request_error")]
    )
    with pytest.raises(APIStatusError) as limited:
        await collect(model.chat(chat_ctx=conversation(), conn_options=NO_RETRY))
    with pytest.raises(APIStatusError) as refused:
        await collect(model.chat(chat_ctx=conversation(), conn_options=NO_RETRY))
    assert (limited.value.status_code, limited.value.retryable) == (429, True)
    assert (refused.value.status_code, refused.value.retryable) == (400, False)


async def test_the_third_request_fails_and_the_retry_gets_the_next_answer(
    server: OpenAIServer, model: openai.LLM
) -> None:
    script = Script([say("one"), say("two"), say("three")])
    server.policy = script
    server.faults.fail(3, HttpError.unavailable())
    answers = [
        (await collect(model.chat(chat_ctx=conversation(), conn_options=ONE_RETRY))).text
        for _ in range(3)
    ]
    assert answers == ["one", "two", "three"]
    # Request 3 got the planned 503 without using the script; the plugin retried as request 4.
    assert len(server.chat_requests) == 4
    script.assert_used_up()


async def test_a_stall_longer_than_the_timeout_is_a_timeout_and_does_not_block_others(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = lambda request: (
        Delay(60) if request.last_user_text == "slow" else say("fast answer")
    )
    stalled = asyncio.create_task(
        collect(
            model.chat(
                chat_ctx=conversation("slow"),
                conn_options=APIConnectOptions(max_retry=0, timeout=1.0),
            )
        )
    )
    await server.chat_requests.wait_for(1)
    # Served while the first request is still waiting for its first byte.
    fast = await collect(model.chat(chat_ctx=conversation("quick"), conn_options=NO_RETRY))
    assert fast.text == "fast answer"
    assert not stalled.done()
    with pytest.raises(APITimeoutError):
        await asyncio.wait_for(stalled, timeout=10)


async def test_the_per_request_timeout_is_conn_options_not_the_constructor_timeout(
    server: OpenAIServer,
) -> None:
    # livekit passes httpx.Timeout(conn_options.timeout) with every chat request, which
    # replaces the client-wide timeout given to the constructor.
    plugin = openai.LLM(base_url=server.base_url, api_key="test", timeout=httpx2.Timeout(0.05))
    server.policy = Script([Delay(0.3, then=say("late but fine"))])
    try:
        got = await collect(plugin.chat(chat_ctx=conversation(), conn_options=NO_RETRY))
    finally:
        await plugin.aclose()
    assert got.text == "late but fine"


async def test_a_stream_cut_after_text_is_an_error_and_is_not_retried(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script([CutStream(after_chunks=3, reply=say("This sentence never ends"))])
    got = Collected()
    with pytest.raises(APIConnectionError) as caught:
        await collect(model.chat(chat_ctx=conversation(), conn_options=ONE_RETRY), into=got)
    # The role chunk and two words arrived before the cut, then the error: never a silent
    # partial answer.
    assert got.text == "This sentence"
    assert caught.value.retryable is False
    assert len(server.chat_requests) == 1


async def test_a_cut_before_any_text_is_retried(server: OpenAIServer, model: openai.LLM) -> None:
    server.policy = Script([CutStream(after_chunks=1), say("second try")])
    got = await collect(model.chat(chat_ctx=conversation(), conn_options=ONE_RETRY))
    assert got.text == "second try"
    assert len(server.chat_requests) == 2


async def test_a_cut_inside_tool_arguments_never_delivers_the_call(
    server: OpenAIServer, model: openai.LLM
) -> None:
    reply = calls(call("lookup_order", {"order_id": "A7", "include_items": None}))
    server.policy = Script([CutStream(after_chunks=4, reply=reply)])
    got = Collected()
    with pytest.raises(APIConnectionError):
        await collect(
            model.chat(chat_ctx=conversation(), tools=[lookup_order], conn_options=NO_RETRY),
            into=got,
        )
    assert got.calls == []


@pytest.mark.parametrize(
    "fault",
    [MalformedChunk(after_chunks=2), StreamError(after_chunks=2)],
    ids=["malformed-chunk", "error-event"],
)
async def test_a_broken_chunk_or_an_error_event_mid_stream_is_an_error(
    server: OpenAIServer, model: openai.LLM, fault: MalformedChunk | StreamError
) -> None:
    server.policy = Script([fault])
    with pytest.raises(APIConnectionError):
        await collect(model.chat(chat_ctx=conversation(), conn_options=NO_RETRY))


async def test_the_fallback_adapter_switches_to_the_second_model_in_an_outage_and_back(
    server: OpenAIServer,
) -> None:
    primary = openai.LLM(model="gpt-4.1", base_url=server.base_url, api_key="test")
    secondary = openai.LLM(model="gpt-4.1-mini", base_url=server.base_url, api_key="test")
    adapter = llm.FallbackAdapter([primary, secondary], attempt_timeout=5.0, retry_interval=0)
    changes: list[tuple[str, bool]] = []
    recovered = asyncio.Event()

    def on_change(event: llm.AvailabilityChangedEvent) -> None:
        changes.append((event.llm.model, event.available))
        if event.available:
            recovered.set()

    adapter.on("llm_availability_changed", on_change)
    server.policy = lambda request: say(f"answered by {request.model}")
    try:
        with server.faults.outage(HttpError.unavailable(), models={"gpt-4.1"}):
            during = await collect(adapter.chat(chat_ctx=conversation()))
            assert during.text == "answered by gpt-4.1-mini"
            assert changes == [("gpt-4.1", False)]
            # The failed primary request, the secondary's, and the adapter's recovery probe
            # of the primary (also refused: the outage is still on).
            await server.chat_requests.wait_for(3)
            assert sorted(r.model for r in server.chat_requests) == [
                "gpt-4.1",
                "gpt-4.1",
                "gpt-4.1-mini",
            ]

        # Each request while the primary is marked down starts a recovery probe of it
        # (unless one is still running); now the probe succeeds.
        async with asyncio.timeout(10):
            while not recovered.is_set():
                assert (await collect(adapter.chat(chat_ctx=conversation()))).text
        after = await collect(adapter.chat(chat_ctx=conversation()))
        assert after.text == "answered by gpt-4.1"
        assert changes == [("gpt-4.1", False), ("gpt-4.1", True)]
    finally:
        await adapter.aclose()
        await primary.aclose()
        await secondary.aclose()


# --- what the real API would refuse -------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "refusal"),
    [
        (
            [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup_order", "arguments": "{}"},
                        }
                    ],
                },
            ],
            "did not have response messages: call_1",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_9", "content": "orphan"},
            ],
            "messages with role 'tool' must be a response to a preceeding message",
        ),
    ],
    ids=["unanswered-call", "orphan-result"],
)
async def test_a_broken_history_is_refused_like_openai_does(
    server: OpenAIServer, messages: list[dict[str, Any]], refusal: str
) -> None:
    # livekit drops a call without its output before sending, so the raw client it wraps
    # sends what a buggy history builder would.
    server.policy = Script([say("never asked")])
    client = openai.LLM(base_url=server.base_url, api_key="test")._client
    try:
        with pytest.raises(BadRequestError, match=refusal) as caught:
            await client.chat.completions.create(model="gpt-4.1", messages=messages)  # type: ignore[arg-type]
    finally:
        await client.close()
    assert caught.value.status_code == 400
    assert len(server.chat_requests) == 0
    [rejection] = server.rejections
    assert rejection.message in caught.value.message
    server.rejections.clear()


async def test_a_reply_calling_a_tool_that_was_not_offered_fails_the_test(
    server: OpenAIServer, model: openai.LLM
) -> None:
    server.policy = Script([calls(call("refund", {"amount": 5}))])
    with pytest.raises(APIStatusError):
        await collect(
            model.chat(chat_ctx=conversation(), tools=[lookup_order], conn_options=NO_RETRY)
        )
    with pytest.raises(AssertionError, match=r"calls 'refund', which was not offered"):
        server.check()
    server.failures.clear()


async def test_a_script_that_runs_out_fails_when_the_server_closes() -> None:
    server = await OpenAIServer(Script([say("only one")])).start()
    plugin = openai.LLM(base_url=server.base_url, api_key="test")
    try:
        assert (await collect(plugin.chat(chat_ctx=conversation(), conn_options=NO_RETRY))).text
        with pytest.raises(APIStatusError) as caught:
            await collect(plugin.chat(chat_ctx=conversation(), conn_options=NO_RETRY))
        assert caught.value.status_code == 500
    finally:
        await plugin.aclose()
    with pytest.raises(
        AssertionError, match=r"script has 1 answer\(s\), all used; unanswered: chat #2"
    ):
        await server.__aexit__(None, None, None)


async def test_an_async_policy_reads_the_offered_tools(
    server: OpenAIServer, model: openai.LLM
) -> None:
    async def rules(request: ChatRequest) -> Reply:
        # What a rules engine does: pick the first offered tool whose name the user says.
        for name in request.tool_names:
            if name.split("_")[0] in request.last_user_text:
                return calls(call(name, {"department": "billing"}))
        return say("no tool fits")

    server.policy = rules
    got = await collect(
        model.chat(
            chat_ctx=conversation("please transfer me"),
            tools=[lookup_order, transfer_call],
            conn_options=NO_RETRY,
        )
    )
    assert [c.name for c in got.calls] == ["transfer_call"]
