"""The real agent graph in text mode (session.run) against in-test backends on real NATS."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from livekit.agents import APIConnectionError, APIConnectOptions, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from nats.aio.client import Client as NATS

from switchboard.contracts.call import CallOutcome
from switchboard.contracts.consent import ConsentDecision, ConsentMode
from switchboard.contracts.escalation import (
    EscalationReason,
    EscalationTrigger,
    HandoffTarget,
)
from switchboard.contracts.sealed import SealedFields
from switchboard.runtime.sealing import open_sealed
from switchboard.simulation.observer import CallObserver
from switchboard.testing import eventually
from switchboard.testing.crm import RunningCrm
from switchboard.testing.fake_backends import Backends, FakeBridge, FakeLedger, FakeRouter
from switchboard.voice.agents.manager import ManagerAgent
from switchboard.voice.agents.specialists import BillingAgent, SalesAgent, SupportAgent
from switchboard.voice.agents.triage import TriageAgent
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.wiring import Bus

HarnessFactory = Any


async def _granted(start_call: HarnessFactory) -> Any:
    h = await start_call()
    await h.session.run(user_input="Yes, that's fine.")
    return h


async def test_the_call_opens_with_the_policy_disclosure_and_notice(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call()
    said = " ".join(h.said())
    assert "You're talking with an AI assistant." in said
    assert "This call may be recorded" in said
    assert h.call.state.policy is not None
    assert h.call.state.policy.mode is ConsentMode.ASK
    assert backends.ledger.commands == []  # nothing is recorded before the caller answers


async def test_consent_granted_records_a_receipt_then_starts_recording(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call()
    result = await h.session.run(user_input="Yes, that's fine.")
    result.expect.next_event().is_function_call(
        name="record_consent_answer", arguments={"answer": "granted"}
    )
    [command] = backends.ledger.commands
    assert command.decision is ConsentDecision.GRANTED
    assert command.transcript_excerpt == "Yes, that's fine."
    assert command.notice_version == "test-notice-1"
    assert h.call.state.consent is ConsentDecision.GRANTED
    assert h.call.ports.gate.recording
    assert h.call.state.consent_sequence == 1
    assert isinstance(h.session.current_agent, TriageAgent)


async def test_consent_denied_is_recorded_and_nothing_is_recorded(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call()
    result = await h.session.run(user_input="No, I'd rather not.")
    result.expect.contains_function_call(
        name="record_consent_answer", arguments={"answer": "denied"}
    )
    assert [c.decision for c in backends.ledger.commands] == [ConsentDecision.DENIED]
    assert not h.call.ports.gate.recording
    assert "won't be recorded" in " ".join(h.said())


async def test_an_unclear_answer_is_asked_again_once_then_recorded_as_unclear(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call()
    first = await h.session.run(user_input="Hmm, what was that?")
    first.expect.contains_function_call_output(
        output="Sorry, I didn't catch that. May we record this call, yes or no?"
    )
    assert backends.ledger.commands == []
    await h.session.run(user_input="I'm not sure.")
    assert [c.decision for c in backends.ledger.commands] == [ConsentDecision.UNCLEAR]
    assert not h.call.ports.gate.recording


async def test_notify_mode_records_consent_from_the_notice_alone(
    nc: NATS, start_call: HarnessFactory
) -> None:
    ledger = await FakeLedger(nc, mode=ConsentMode.NOTIFY).start()
    h = await start_call()
    await eventually(lambda: ledger.commands)
    assert [c.decision for c in ledger.commands] == [ConsentDecision.GRANTED]
    assert [c.mode for c in ledger.commands] == [ConsentMode.NOTIFY]
    assert h.call.ports.gate.recording
    assert isinstance(h.session.current_agent, TriageAgent)


async def test_without_a_ledger_the_strictest_policy_is_asked_and_nothing_records(
    nc: NATS, start_call: HarnessFactory
) -> None:
    h = await start_call()
    assert h.call.state.policy is not None
    assert h.call.state.policy.fallback
    await h.session.run(user_input="Yes.")
    assert h.call.state.consent is ConsentDecision.GRANTED
    assert not h.call.ports.gate.recording  # no receipt, no recording
    assert h.call.ports.gate.timeline[-1].detail == "no consent receipt in time"


async def _route(h: Any, text: str) -> Any:
    return await h.session.run(user_input=text)


async def test_triage_routes_billing_with_the_history_carried(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    result = await _route(h, "I have a question about my bill.")
    result.expect.contains_function_call(
        name="route_to_department", arguments={"department": "billing"}
    )
    result.expect.contains_agent_handoff(new_agent_type=BillingAgent)
    agent = h.session.current_agent
    texts = [i.text_content for i in agent.chat_ctx.items if isinstance(i, llm.ChatMessage)]
    assert "I have a question about my bill." in texts
    assert any("Handoff from triage" in (t or "") for t in texts)
    assert h.call.state.intent == "billing"


async def test_triage_routes_support(backends: Backends, start_call: HarnessFactory) -> None:
    h = await _granted(start_call)
    result = await _route(h, "My internet keeps dropping.")
    result.expect.contains_agent_handoff(new_agent_type=SupportAgent)


async def test_triage_routes_sales(backends: Backends, start_call: HarnessFactory) -> None:
    h = await _granted(start_call)
    result = await _route(h, "I'd like to buy a headset.")
    result.expect.contains_agent_handoff(new_agent_type=SalesAgent)


async def test_escalation_in_the_first_sentence_goes_to_the_manager_with_consent_unclear(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call()
    result = await h.session.run(user_input="I want to speak to a manager right now.")
    result.expect.contains_function_call(
        name="escalate", arguments={"reason": "caller_wants_manager"}
    )
    await eventually(lambda: isinstance(h.session.current_agent, ManagerAgent))
    assert [c.decision for c in backends.ledger.commands] == [ConsentDecision.UNCLEAR]
    [request] = backends.router.requests
    # A manager is the model's call (here the rules brain's), not the screen's.
    assert request.trigger is EscalationTrigger.LLM_TOOL
    assert request.current_agent == "triage"
    assert isinstance(h.session.current_agent, ManagerAgent)
    assert not h.call.ports.gate.recording


async def test_consent_and_escalation_in_one_breath_records_the_grant(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call()
    await h.session.run(user_input="Yes, and get me your supervisor.")
    await eventually(lambda: isinstance(h.session.current_agent, ManagerAgent))
    assert [c.decision for c in backends.ledger.commands] == [ConsentDecision.GRANTED]
    assert h.call.ports.gate.recording
    assert isinstance(h.session.current_agent, ManagerAgent)


async def test_manager_takes_over_with_history_context_and_authority(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory, bus: Bus
) -> None:
    h = await _granted(start_call)
    observer = await CallObserver().start(bus.nc, h.call.call_id)
    await h.session.run(user_input="I have a question about my bill.")
    await h.session.run(user_input="I was charged twice and I want a refund.")
    result = await h.session.run(user_input="Let me talk to a manager.")
    result.expect.contains_function_call(name="escalate")
    result.expect.contains_agent_handoff(new_agent_type=ManagerAgent)
    [request] = backends.router.requests
    assert request.reason is EscalationReason.CALLER_REQUEST
    assert request.current_agent == "billing"
    assert request.intent == "billing"
    assert request.attempts == 1
    assert request.context is not None
    assert "charged twice" in request.context.summary
    manager = h.session.current_agent
    texts = [i.text_content or "" for i in manager.chat_ctx.items if isinstance(i, llm.ChatMessage)]
    assert "I was charged twice and I want a refund." in texts
    assert any("Handoff from billing" in t and "Intent: billing" in t for t in texts)
    credit = await h.session.run(user_input="Please refund $40.")
    credit.expect.contains_function_call(name="approve_goodwill_credit", arguments={"amount": 40.0})
    assert h.call.state.collected["goodwill_credit"] == "40.00"
    [(taken, confirmed)] = demo_crm.book.taken.values()
    assert (taken.kind, taken.amount_minor) == ("credit", 4000)
    assert confirmed.reference in h.said()[-1]
    [granted] = await eventually(lambda: observer.of_kind("case.credit_granted"))
    assert granted.data["amount_minor"] == 4000
    assert granted.data["agent"] == "manager"
    assert granted.data["reference"] == confirmed.reference
    assert granted.data["authority"] == {
        "rule": "manager_credit_limit",
        "limit_minor": 5000,
        "currency": "USD",
    }
    await eventually(lambda: len(observer.of_kind("agent.handed_off")) == 2)
    handed = observer.of_kind("agent.handed_off")
    assert [(e.data["from_agent"], e.data["to_agent"]) for e in handed] == [
        ("triage", "billing"),
        ("billing", "manager"),
    ]
    assert handed[-1].data["context"]["intent"] == "billing"
    decided = next(e for e in observer.events if e.kind == "escalation.decided")
    assert handed[-1].data["decision_id"] == decided.data["decision_id"]
    assert handed[0].data.get("decision_id") is None  # routing is not an escalation
    await observer.close()


async def test_a_legal_threat_is_escalated_by_the_model_not_the_screen(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    result = await h.session.run(user_input="I'm going to sue you over this.")
    result.expect.contains_function_call(name="escalate", arguments={"reason": "legal_threat"})
    [request] = backends.router.requests
    assert request.reason is EscalationReason.LEGAL_THREAT
    assert request.trigger is EscalationTrigger.LLM_TOOL
    assert h.call.state.outcome is CallOutcome.TRANSFERRED


async def test_a_safety_risk_escalates_before_the_model_is_asked(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    await h.session.run(user_input="I smell gas in the kitchen.")
    [request] = backends.router.requests
    assert request.reason is EscalationReason.SAFETY
    assert request.trigger is EscalationTrigger.PHRASE
    assert request.wants_human


@pytest.mark.parametrize(
    "text",
    [
        "My account manager told me this bill would include a discount.",
        "Sue from your office sent me the invoice.",
        "My mobile operator charges me for roaming.",
        "I don't need a manager, just tell me the balance.",
    ],
)
async def test_near_misses_do_not_escalate(
    backends: Backends, start_call: HarnessFactory, text: str
) -> None:
    h = await _granted(start_call)
    result = await h.session.run(user_input=text)
    with pytest.raises(AssertionError):
        result.expect.contains_function_call(name="escalate")
    assert backends.router.requests == []
    assert h.call.state.outcome is None


async def test_repeated_failure_escalates_on_its_own(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    await h.session.run(user_input="I have a question about my bill.")
    for _ in range(3):
        await h.session.run(user_input="That's not what I asked.")
    [request] = backends.router.requests
    assert request.reason is EscalationReason.REPEATED_FAILURE
    assert request.trigger is EscalationTrigger.FAILURE_COUNT
    assert isinstance(h.session.current_agent, ManagerAgent)


class DownLLM(llm.LLM[Any]):
    """Every provider is down."""

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
        return _DownStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _DownStream(llm.LLMStream):
    async def _run(self) -> None:
        raise APIConnectionError("provider down", retryable=False)


async def test_consent_and_escalation_keep_working_when_the_llm_is_down(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call(brain=DownLLM())
    await h.session.run(user_input="I need a human being, now.")
    await eventually(lambda: h.call.state.outcome is CallOutcome.TRANSFERRED)
    assert [c.decision for c in backends.ledger.commands] == [ConsentDecision.UNCLEAR]
    assert h.call.state.outcome is CallOutcome.TRANSFERRED
    assert backends.bridge.placed


async def test_revoking_consent_mid_call_stops_recording_and_tells_the_ledger(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    assert h.call.ports.gate.recording
    result = await h.session.run(user_input="Please stop recording.")
    result.expect.contains_function_call(name="revoke_recording_consent")
    assert not h.call.ports.gate.recording
    assert "stopped recording" in h.said()[-1]
    await eventually(lambda: len(backends.ledger.commands) == 2)
    assert [c.decision for c in backends.ledger.commands] == [
        ConsentDecision.GRANTED,
        ConsentDecision.REVOKED,
    ]
    assert h.call.state.consent is ConsentDecision.REVOKED
    assert [t.action for t in h.call.ports.gate.timeline] == ["started", "stopped"]


async def test_stop_recording_and_a_question_get_one_answer(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    await h.session.run(user_input="I have a question about my bill.")
    before = len(h.said())
    result = await h.session.run(user_input="Stop recording and explain my bill.")
    result.expect.contains_function_call(name="revoke_recording_consent")
    result.expect.contains_function_call(name="explain_latest_bill")
    answer = h.said()[before:]
    assert len(answer) == 1, answer
    assert "stopped recording" in answer[0]
    assert "latest invoice" in answer[0]
    assert not h.call.ports.gate.recording


async def test_notify_mode_revocation_in_other_words_stops_recording(
    nc: NATS, start_call: HarnessFactory
) -> None:
    ledger = await FakeLedger(nc, mode=ConsentMode.NOTIFY).start()
    await FakeRouter(nc).start()
    await FakeBridge(nc).start()
    h = await start_call()
    assert h.call.ports.gate.recording  # notify: the notice is enough
    await h.session.run(user_input="Actually I don't want this call recorded anymore.")
    assert not h.call.ports.gate.recording
    await eventually(lambda: len(ledger.commands) == 2)
    assert [c.decision for c in ledger.commands] == [
        ConsentDecision.GRANTED,
        ConsentDecision.REVOKED,
    ]


async def test_a_turn_the_rules_brain_cannot_act_on_counts_and_a_person_is_offered(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    await h.session.run(user_input="Blue elephants sing in the rain.")
    assert h.call.state.failures.count == 1
    await h.session.run(user_input="Purple monkeys dishwasher.")
    assert "put you through to a person" in h.said()[-1]
    result = await h.session.run(user_input="Yes please.")
    result.expect.contains_function_call(
        name="escalate", arguments={"reason": "caller_wants_person"}
    )
    assert backends.router.requests[0].wants_human
    assert h.call.state.outcome is CallOutcome.TRANSFERRED


async def test_the_intake_group_lets_the_caller_go_back_and_fix_the_email(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    await h.session.run(user_input="I'd like to buy a headset.")
    result = await h.session.run(user_input="I want to order the headset.")
    result.expect.contains_function_call(name="place_order", arguments={"product": "headset"})
    await h.session.run(user_input="jane dot doe at example dot com")
    back = await h.session.run(user_input="Wait, that's wrong, change my email.")
    back.expect.contains_function_call(name="out_of_scope", arguments={"task_ids": ["email"]})
    await h.session.run(user_input="jane dot smith at example dot com")
    await h.session.run(user_input="221 Baker Street, Springfield, 12345.")
    await eventually(lambda: isinstance(h.session.current_agent, SalesAgent))
    await eventually(lambda: "jane.smith@example.com" in h.said()[-1])
    assert h.call.state.collected["email"] == "jane.smith@example.com"
    assert h.call.state.collected["shipping_address"] == "221 Baker Street, Springfield, 12345"
    assert "jane.smith@example.com" in h.said()[-1]
    assert isinstance(h.session.current_agent, SalesAgent)
    steps = [a for a in h.transcript.agents if a.endswith("_task") and a != "consent_task"]
    assert steps == ["email_task", "address_task", "email_task", "address_task"]


async def test_an_escalation_inside_the_intake_group_ends_it_and_escalates(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await _granted(start_call)
    await h.session.run(user_input="I'd like to buy a headset.")
    await h.session.run(user_input="I want to order the headset.")
    await h.session.run(user_input="This is useless, get me a manager.")
    await eventually(lambda: isinstance(h.session.current_agent, ManagerAgent))
    assert backends.router.requests[0].current_agent == "sales"
    assert isinstance(h.session.current_agent, ManagerAgent)


async def test_without_a_router_a_callback_is_offered_and_the_fallback_is_published(
    nc: NATS, start_call: HarnessFactory, bus: Bus
) -> None:
    ledger = await FakeLedger(nc).start()
    h = await _granted(start_call)
    observer = await CallObserver().start(bus.nc, h.call.call_id)
    await h.session.run(user_input="Let me talk to a manager.")
    result = await h.session.run(user_input="Yes please.")
    result.expect.contains_function_call(name="accept_callback")
    assert await observer.wait_for("call.callback_requested", 5.0)
    kinds = [e.kind for e in observer.events]
    assert "escalation.decided" in kinds
    decided = next(e for e in observer.events if e.kind == "escalation.decided")
    assert decided.data["fallback"] is True
    assert decided.data["target"] == HandoffTarget.CALLBACK
    callback = next(e for e in observer.events if e.kind == "call.callback_requested")
    # The number travels sealed under the caller's key, with the caller's reference.
    assert callback.data["number"] is None
    ref, key = ledger.keys["+14155550123"]
    assert callback.data["caller_ref"] == ref
    sealed = msgspec.convert(callback.data["sealed"], SealedFields)
    assert open_sealed(sealed, key)["number"] == "+14155550123"
    assert callback.data["decision_id"] == decided.data["decision_id"]
    assert h.call.state.outcome is CallOutcome.CALLBACK
    await observer.close()


async def test_without_a_back_office_nothing_is_invented_and_a_person_is_offered(
    backends: Backends, start_call: HarnessFactory
) -> None:
    # The production back office (the CRM adapter over NATS) with no adapter answering.
    h = await start_call()
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I have a question about my bill.")
    bill = await h.session.run(user_input="Can you explain my latest bill?")
    bill.expect.contains_function_call(name="explain_latest_bill")
    said = h.said()[-1]
    assert said.startswith("I can't see your account right now")
    assert "put you through to a person, or arrange a callback" in said
    assert "$" not in " ".join(h.said())
    assert h.call.state.attempts == 1  # counts towards escalating to someone who can


async def test_with_the_demo_crm_the_bill_is_its_data_files_invoice(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory
) -> None:
    h = await start_call(caller_number="+14155550123")
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I have a question about my bill.")
    await h.session.run(user_input="Can you explain my latest bill?")
    said = h.said()[-1]
    assert said.startswith("Your latest invoice, INV-2026-0917, dated 1 September 2026, is $64.20")
    assert "Premium plan $49.00, one-off equipment fee $15.20" in said


async def test_a_caller_the_crm_does_not_know_hears_that_and_is_offered_a_person(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory
) -> None:
    h = await start_call(caller_number="+15550000000")
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I have a question about my bill.")
    await h.session.run(user_input="Can you explain my latest bill?")
    assert h.said()[-1].startswith("I can't find an account for the number you're calling from")
    assert "$" not in " ".join(h.said())


async def test_the_manager_applies_no_credit_when_billing_does_not_answer(
    backends: Backends, start_call: HarnessFactory, bus: Bus
) -> None:
    h = await start_call()
    observer = await CallObserver().start(bus.nc, h.call.call_id)
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="Let me talk to a manager.")
    credit = await h.session.run(user_input="Please refund $40.")
    credit.expect.contains_function_call(name="approve_goodwill_credit", arguments={"amount": 40.0})
    assert h.said()[-1].startswith("No credit was applied.")
    assert "goodwill_credit" not in h.call.state.collected
    await h.call.finish()
    assert await observer.wait_for("call.ended", 5.0)
    assert not observer.of_kind("case.credit_granted")
    await observer.close()


async def test_a_credit_above_the_configured_limit_is_not_asked_for(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory
) -> None:
    h = await start_call()
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="Let me talk to a manager.")
    await h.session.run(user_input="Please refund $120.")
    assert "The most I can offer is a $50.00 credit" in h.said()[-1]
    assert demo_crm.book.taken == {}


async def test_an_order_goes_to_the_back_office_with_what_the_intake_collected(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory, bus: Bus
) -> None:
    h = await start_call()
    observer = await CallObserver().start(bus.nc, h.call.call_id)
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I'd like to buy a headset.")
    await h.session.run(user_input="I want to order the headset.")
    await h.session.run(user_input="jane dot doe at example dot com")
    await h.session.run(user_input="221 Baker Street, Springfield, 12345.")
    [(taken, confirmed)] = await eventually(lambda: list(demo_crm.book.taken.values()))
    await eventually(lambda: confirmed.reference in h.said()[-1])
    assert (taken.kind, taken.call_id, taken.amount_minor) == ("order", h.call.call_id, 5900)
    assert "of $59.00" in h.said()[-1]
    [placed] = await eventually(lambda: observer.of_kind("case.order_placed"))
    assert placed.data["product_id"] == "headset"
    # Email and address reached the back office in its request; the event seals them.
    assert placed.data["email"] is None
    _, key = backends.ledger.keys["+14155550123"]
    assert open_sealed(msgspec.convert(placed.data["sealed"], SealedFields), key) == {
        "email": "jane.doe@example.com",
        "shipping_address": "221 Baker Street, Springfield, 12345",
    }
    assert placed.data["authority"]["rule"] == "orders_by_phone"
    assert placed.data["reference"] == confirmed.reference
    await observer.close()


async def test_an_order_the_back_office_cannot_take_is_not_confirmed(
    backends: Backends, start_call: HarnessFactory
) -> None:
    h = await start_call()
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I'd like to buy a headset.")
    await h.session.run(user_input="I want to order the headset.")
    await h.session.run(user_input="jane dot doe at example dot com")
    await h.session.run(user_input="221 Baker Street, Springfield, 12345.")
    await eventually(lambda: "Nothing was ordered" in h.said()[-1])
    said = h.said()[-1]
    assert "Nothing was ordered" in said
    assert "is placed" not in " ".join(h.said())


async def test_billing_requests_a_refund_within_its_configured_limit_and_says_so(
    backends: Backends,
    demo_crm: RunningCrm,
    start_call: HarnessFactory,
    settings: VoiceSettings,
    bus: Bus,
) -> None:
    configured = msgspec.structs.replace(settings, refund_limits="billing=30")
    h = await start_call(configured=configured)
    observer = await CallObserver().start(bus.nc, h.call.call_id)
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I have a question about my bill.")
    above = await h.session.run(user_input="I was charged twice and I want a refund of $45.")
    above.expect.contains_function_call(name="request_refund", arguments={"amount": 45.0})
    assert "up to $30.00 myself" in h.said()[-1]
    assert demo_crm.book.taken == {}  # above the limit nothing is asked of billing
    within = await h.session.run(user_input="Then I want a refund of $20.")
    within.expect.contains_function_call(name="request_refund", arguments={"amount": 20.0})
    [(taken, confirmed)] = demo_crm.book.taken.values()
    assert (taken.kind, taken.amount_minor) == ("refund", 2000)
    said = h.said()[-1]
    assert said.startswith(f"I've requested a refund of $20.00, reference {confirmed.reference}.")
    assert "five working days" in said  # the back office's own words, not ours
    [requested] = await eventually(lambda: observer.of_kind("case.refund_requested"))
    assert requested.data["authority"] == {
        "rule": "refund_limits.billing",
        "limit_minor": 3000,
        "currency": "USD",
    }
    assert requested.data["agent"] == "billing"
    await observer.close()


async def test_support_out_of_remote_fixes_opens_a_ticket_for_people(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory, bus: Bus
) -> None:
    h = await _granted(start_call)
    observer = await CallObserver().start(bus.nc, h.call.call_id)
    await h.session.run(user_input="My internet keeps dropping.")
    for _ in range(3):
        if "opened ticket" in h.said()[-1]:
            break
        await h.session.run(user_input="My internet is still dropping.")
    [(taken, confirmed)] = demo_crm.book.taken.values()
    assert taken.kind == "ticket"
    assert f"opened ticket {confirmed.reference}" in h.said()[-1]
    [opened] = await eventually(lambda: observer.of_kind("case.ticket_opened"))
    assert (opened.data["topic"], opened.data["agent"]) == ("internet", "support")
    assert "summary" not in opened.data  # what the caller said stays out of the event
    await observer.close()


async def test_orders_by_phone_can_be_switched_off(
    backends: Backends, demo_crm: RunningCrm, start_call: HarnessFactory, settings: VoiceSettings
) -> None:
    h = await start_call(configured=msgspec.structs.replace(settings, orders_by_phone=False))
    await h.session.run(user_input="Yes, that's fine.")
    await h.session.run(user_input="I'd like to buy a headset.")
    await h.session.run(user_input="I want to order the headset.")
    assert h.said()[-1].startswith("I can't place orders over the phone.")
    assert demo_crm.book.taken == {}
