"""RulesBrain as an ``llm.LLM``: what it answers for each kind of request."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pytest
from livekit.agents import llm
from livekit.agents.llm import function_tool
from pydantic import Field

from switchboard.voice.brain import RulesBrain
from switchboard.voice.brain.decisions import SUMMARY_PROMPT_PREFIX
from switchboard.voice.brain.model import BRAIN_MODEL


@function_tool
async def record_consent_answer(answer: Literal["granted", "denied", "unclear"]) -> None:
    """Record the consent answer."""


@function_tool
async def route_to_department(department: Literal["billing", "support", "sales"]) -> None:
    """Route the caller."""


@function_tool
async def escalate(reason: str) -> None:
    """Escalate."""


@function_tool
async def end_call() -> None:
    """End the call."""


@function_tool
async def record_email(email: str) -> None:
    """Record the email."""


@function_tool
async def record_address(address: str) -> None:
    """Record the address."""


@function_tool
async def approve_goodwill_credit(amount: float) -> None:
    """Approve a credit."""


@function_tool
async def out_of_scope(
    task_ids: Annotated[
        list[str],
        Field(json_schema_extra={"items": {"type": "string", "enum": ["email"]}}),
    ],
) -> None:
    """Go back to an earlier task (same shape as TaskGroup's tool)."""


TRIAGE: list[llm.Tool] = [route_to_department, escalate, end_call]


def _ctx(*turns: tuple[str, str]) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You are an agent.")
    for role, text in turns:
        ctx.add_message(role=role, content=text)  # type: ignore[arg-type]
    return ctx


async def _ask(
    ctx: llm.ChatContext, tools: list[llm.Tool], **kwargs: object
) -> llm.CollectedResponse:
    return await RulesBrain().chat(chat_ctx=ctx, tools=tools, **kwargs).collect()  # type: ignore[arg-type]


def test_the_brain_says_what_it_is() -> None:
    brain = RulesBrain()
    assert brain.model == BRAIN_MODEL
    assert "no AI model" in brain.provider


@pytest.mark.parametrize(
    ("text", "answer"),
    [("Yes, that's fine", "granted"), ("No thanks", "denied"), ("Hmm, what?", "unclear")],
)
async def test_consent_answers_call_the_consent_tool(text: str, answer: str) -> None:
    out = await _ask(_ctx(("user", text)), [record_consent_answer, escalate])
    assert [c.name for c in out.tool_calls] == ["record_consent_answer"]
    assert json.loads(out.tool_calls[0].arguments) == {"answer": answer}


@pytest.mark.parametrize(
    ("text", "department"),
    [
        ("My bill is wrong", "billing"),
        ("The wifi is broken", "support"),
        ("I want to buy", "sales"),
    ],
)
async def test_intents_route_to_the_department(text: str, department: str) -> None:
    out = await _ask(_ctx(("user", text)), TRIAGE)
    assert out.tool_calls[0].name == "route_to_department"
    assert json.loads(out.tool_calls[0].arguments) == {"department": department}


async def test_a_request_for_a_manager_calls_escalate() -> None:
    out = await _ask(_ctx(("user", "Can I talk to a supervisor?")), TRIAGE)
    assert out.tool_calls[0].name == "escalate"
    assert json.loads(out.tool_calls[0].arguments)["reason"] == "caller_wants_manager"


async def test_goodbye_ends_the_call() -> None:
    out = await _ask(_ctx(("user", "That's all, goodbye.")), TRIAGE)
    assert out.tool_calls[0].name == "end_call"


async def test_emails_and_addresses_are_recorded_through_the_step_tools() -> None:
    email = await _ask(_ctx(("user", "jo dot lee at example dot com")), [record_email])
    assert json.loads(email.tool_calls[0].arguments) == {"email": "jo.lee@example.com"}
    address = await _ask(_ctx(("user", "10 Downing Street, London")), [record_address])
    assert json.loads(address.tool_calls[0].arguments) == {"address": "10 Downing Street, London"}


async def test_an_unclear_email_gets_a_question_not_a_guess() -> None:
    out = await _ask(_ctx(("user", "it's my usual one")), [record_email])
    assert out.tool_calls == []
    assert "email" in out.text.lower()


async def test_going_back_names_a_visited_step_from_the_tool_schema() -> None:
    out = await _ask(
        _ctx(("user", "Wait, that's wrong, change my email.")), [record_address, out_of_scope]
    )
    assert out.tool_calls[0].name == "out_of_scope"
    assert json.loads(out.tool_calls[0].arguments) == {"task_ids": ["email"]}


async def test_the_manager_credit_uses_the_amount_said_earlier() -> None:
    ctx = _ctx(("user", "I was charged $80 twice"), ("assistant", "I see."), ("user", "Refund it"))
    out = await _ask(ctx, [approve_goodwill_credit, escalate])
    assert json.loads(out.tool_calls[0].arguments) == {"amount": 80.0}


async def test_tool_outputs_are_answered_by_saying_them() -> None:
    ctx = _ctx(("user", "explain my bill"))
    ctx.items.append(llm.FunctionCall(call_id="c1", name="explain_latest_bill", arguments="{}"))
    ctx.items.append(
        llm.FunctionCallOutput(
            call_id="c1", name="explain_latest_bill", output="Your bill is $10.", is_error=False
        )
    )
    out = await _ask(ctx, TRIAGE)
    assert out.tool_calls == []
    assert out.text == "Your bill is $10."


async def test_internal_tool_errors_are_not_read_out() -> None:
    ctx = _ctx(("user", "do it"))
    ctx.items.append(llm.FunctionCall(call_id="c1", name="x", arguments="{}"))
    ctx.items.append(
        llm.FunctionCallOutput(
            call_id="c1", name="x", output="An internal error occurred", is_error=True
        )
    )
    out = await _ask(ctx, TRIAGE)
    assert "went wrong" in out.text


async def test_tool_choice_none_means_text_only() -> None:
    out = await _ask(_ctx(("user", "goodbye")), TRIAGE, tool_choice="none")
    assert out.tool_calls == []
    assert out.text


async def test_after_a_handoff_the_new_agent_opens_instead_of_replaying_the_old_request() -> None:
    ctx = _ctx(("user", "Let me talk to a manager."))
    ctx.items.append(llm.AgentHandoff(old_agent_id="billing", new_agent_id="manager"))
    out = await _ask(ctx, [approve_goodwill_credit, escalate, end_call])
    assert out.tool_calls == []
    assert "manager" in out.text


async def test_the_task_group_summary_prompt_gets_a_faithful_summary() -> None:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content=f"{SUMMARY_PROMPT_PREFIX} into a short summary.")
    ctx.add_message(
        role="user",
        content=(
            'Conversation to summarize:\n\n<function_call name="record_email" call_id="a">\n'
            '{"email": "old@example.com"}\n</function_call>\n'
            '<function_call name="record_email" call_id="b">\n'
            '{"email": "new@example.com"}\n</function_call>'
        ),
    )
    out = await _ask(ctx, [])
    assert "new@example.com" in out.text
    assert "old@example.com" not in out.text


@function_tool(name="out_of_scope")
async def out_of_scope_to_address(
    task_ids: Annotated[
        list[str],
        Field(json_schema_extra={"items": {"type": "string", "enum": ["address"]}}),
    ],
) -> None:
    """Go back (only the address step was visited besides the current one)."""


async def test_correcting_the_current_step_is_not_a_step_back() -> None:
    out = await _ask(
        _ctx(("user", "That's wrong, my email is jane at example dot com")),
        [record_email, out_of_scope_to_address],
    )
    assert [c.name for c in out.tool_calls] == ["record_email"]
