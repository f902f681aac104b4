"""The routing rules, without a broker: each rule, their order, and the explanations."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable

import msgspec
import pytest

from switchboard.contracts.escalation import (
    EscalationReason,
    EscalationRequest,
    HandoffDecision,
    HandoffTarget,
)
from switchboard.contracts.handoff import HandoffContext
from switchboard.escalation.queues import QueueSnapshot, QueueState
from switchboard.escalation.routing import DECISION_NAMESPACE, decide
from switchboard.escalation.rules_file import RouterSection, Rules

RequestFactory = Callable[..., EscalationRequest]

# The test rules keep New York office hours (UTC-5 in early March 2026).
WEDNESDAY_10AM = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)
WEDNESDAY_6PM = dt.datetime(2026, 3, 4, 23, 0, tzinfo=dt.UTC)
WEDNESDAY_10PM = dt.datetime(2026, 3, 5, 3, 0, tzinfo=dt.UTC)
HOLIDAY_NOON = dt.datetime(2026, 7, 3, 16, 0, tzinfo=dt.UTC)


def ids(decision: HandoffDecision) -> list[str]:
    return [hit.rule_id for hit in decision.rules_fired]


def states(rules: Rules, **changes: QueueState) -> QueueSnapshot:
    return {**rules.static_states, **changes}


def run(
    rules: Rules,
    make_request: RequestFactory,
    at: dt.datetime = WEDNESDAY_10AM,
    queues: QueueSnapshot | None = None,
    **overrides: object,
) -> HandoffDecision:
    snapshot = rules.static_states if queues is None else queues
    return decide(rules, make_request(**overrides), snapshot, at)


# ------------------------------------------------------------------- AI first, then people


def test_a_first_caller_request_goes_to_the_ai_manager(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request)
    assert decision.target is HandoffTarget.AI_MANAGER
    assert decision.agent == "manager"
    assert decision.queue is None
    assert decision.destinations == []
    assert decision.say == "EN manager."
    assert ids(decision)[-1] == "ai.manager"


def test_an_explicit_request_for_a_person_goes_to_the_intent_queue_with_destinations_in_order(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, wants_human=True)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.queue == "billing"
    assert [d.id for d in decision.destinations] == ["billing-1", "billing-2"]
    assert [d.address for d in decision.destinations] == [
        "+15550100101",
        "sip:billing@pbx.example.com",
    ]
    assert decision.say == "Connecting you to billing."
    assert ids(decision) == [
        "intent.queue",
        "language.say",
        "human.requested",
        "human.queue",
    ]


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        (EscalationReason.MANAGER_REQUEST, "human.manager_request"),
        (EscalationReason.REPEATED_FAILURE, "human.repeated_failure"),
    ],
)
def test_manager_requests_and_repeated_failures_go_to_a_person(
    rules: Rules, make_request: RequestFactory, reason: EscalationReason, rule: str
) -> None:
    decision = run(rules, make_request, reason=reason, current_agent="manager")
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.queue == "billing"
    assert rule in ids(decision)


def test_repeated_failure_raises_priority_from_the_rules(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, reason=EscalationReason.REPEATED_FAILURE)
    assert decision.priority == 30
    assert "priority.reason" in ids(decision)
    assert run(rules, make_request, wants_human=True).priority == 10


def test_reaching_the_attempts_limit_goes_to_a_person_even_on_a_caller_request(
    rules: Rules, make_request: RequestFactory
) -> None:
    assert run(rules, make_request, attempts=1).target is HandoffTarget.AI_MANAGER
    decision = run(rules, make_request, attempts=2)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    hit = next(h for h in decision.rules_fired if h.rule_id == "human.attempts")
    assert hit.explanation == "The AI has tried 2 times (limit 2)."


def test_a_caller_request_while_the_manager_is_on_the_call_goes_to_a_person(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, current_agent="manager")
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert "human.after_manager" in ids(decision)


def test_agent_cannot_help_goes_to_the_intent_specialist_before_the_manager(
    rules: Rules, make_request: RequestFactory
) -> None:
    cannot_help = EscalationReason.AGENT_CANNOT_HELP
    from_triage = run(rules, make_request, reason=cannot_help)
    assert from_triage.target is HandoffTarget.AI_SPECIALIST
    assert from_triage.agent == "billing"
    assert from_triage.say == "EN specialist."
    from_specialist = run(rules, make_request, reason=cannot_help, current_agent="billing")
    assert from_specialist.target is HandoffTarget.AI_MANAGER


def test_an_intent_without_a_specialist_goes_to_the_manager(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, reason=EscalationReason.AGENT_CANNOT_HELP, intent="support")
    assert decision.target is HandoffTarget.AI_MANAGER


def test_with_the_ai_manager_turned_off_a_first_request_goes_to_a_person(
    rules: Rules, make_request: RequestFactory
) -> None:
    no_manager = dataclasses.replace(
        rules, router=msgspec.structs.replace(rules.router, ai_manager=False)
    )
    assert isinstance(no_manager.router, RouterSection)
    decision = run(no_manager, make_request)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert "human.no_ai_manager" in ids(decision)


# ------------------------------------------------------------------- intents


def test_an_unknown_intent_goes_to_the_general_queue_without_echoing_it(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, intent="jane@example.com wants a refund", wants_human=True)
    assert decision.queue == "general"
    assert ids(decision)[0] == "intent.default"
    assert all("jane" not in hit.explanation for hit in decision.rules_fired)


def test_a_missing_intent_is_taken_from_the_handoff_context(
    rules: Rules, make_request: RequestFactory
) -> None:
    context = HandoffContext(intent="sales")
    decision = run(rules, make_request, intent=None, context=context, wants_human=True)
    assert decision.queue == "sales"
    no_intent = run(rules, make_request, intent=None, wants_human=True)
    assert no_intent.queue == "general"
    assert no_intent.rules_fired[0].explanation.startswith("No intent given")


def test_intent_aliases_match_whatever_their_case(
    rules: Rules, make_request: RequestFactory
) -> None:
    assert run(rules, make_request, intent=" Refund ", wants_human=True).queue == "billing"


# ------------------------------------------------------------------- VIP and priority


def test_a_vip_tier_raises_priority(rules: Rules, make_request: RequestFactory) -> None:
    decision = run(rules, make_request, vip_tier="Gold", wants_human=True)
    assert decision.priority == 30
    assert "vip.priority" in ids(decision)


def test_the_top_vip_tier_skips_the_ai_manager_and_priority_stops_at_the_maximum(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, vip_tier="platinum")
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.priority == 100
    assert {"vip.priority", "vip.human"} <= set(ids(decision))


def test_an_unknown_vip_tier_changes_nothing_but_is_explained(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, vip_tier="diamond")
    assert decision.target is HandoffTarget.AI_MANAGER
    assert decision.priority == 10
    assert "vip.unknown" in ids(decision)


# ------------------------------------------------------------------- hours and capacity


def test_after_hours_a_person_request_overflows_to_a_queue_still_open(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, at=WEDNESDAY_6PM, wants_human=True)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.queue == "general"
    assert [d.id for d in decision.destinations] == ["general-1", "general-2"]
    assert ids(decision)[-2:] == ["queue.unavailable", "human.overflow"]
    assert "closed" in decision.rules_fired[-2].explanation


def test_after_hours_with_nothing_open_the_caller_leaves_a_voicemail(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, at=WEDNESDAY_10PM, wants_human=True)
    assert decision.target is HandoffTarget.VOICEMAIL
    assert decision.queue == "billing"
    assert [d.address for d in decision.destinations] == ["sip:vm-billing@pbx.example.com"]
    assert decision.say == "EN voicemail."
    assert ids(decision)[-1] == "after_hours.voicemail"


def test_after_hours_a_queue_without_voicemail_arranges_a_callback(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, at=WEDNESDAY_10PM, wants_human=True, intent="support")
    assert decision.target is HandoffTarget.CALLBACK
    assert decision.queue == "support"
    assert decision.destinations == []
    assert ids(decision)[-1] == "after_hours.callback"


def test_a_closed_day_is_closed_whatever_the_weekly_hours_say(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, at=HOLIDAY_NOON, wants_human=True)
    assert decision.queue == "general"
    assert "human.overflow" in ids(decision)


def test_a_full_queue_overflows_to_one_with_room(
    rules: Rules, make_request: RequestFactory
) -> None:
    full = states(rules, billing=QueueState(waiting=5, agents_available=9))
    decision = run(rules, make_request, queues=full, wants_human=True)
    assert decision.queue == "general"
    unavailable = next(h for h in decision.rules_fired if h.rule_id == "queue.unavailable")
    assert unavailable.explanation == "billing has 5 callers waiting (limit 5)."


def test_few_agents_make_a_queue_full_sooner(rules: Rules, make_request: RequestFactory) -> None:
    # Two callers per agent: one agent and two waiting is full though max_waiting is 5.
    busy = states(rules, billing=QueueState(waiting=2, agents_available=1))
    assert run(rules, make_request, queues=busy, wants_human=True).queue == "general"
    room = states(rules, billing=QueueState(waiting=1, agents_available=1))
    assert run(rules, make_request, queues=room, wants_human=True).queue == "billing"


def test_a_queue_with_no_agents_counts_as_full(rules: Rules, make_request: RequestFactory) -> None:
    empty = states(rules, billing=QueueState(waiting=0, agents_available=0))
    decision = run(rules, make_request, queues=empty, wants_human=True)
    assert decision.queue == "general"
    assert "no agents available" in decision.rules_fired[-2].explanation


def test_full_queues_everywhere_arrange_a_callback(
    rules: Rules, make_request: RequestFactory
) -> None:
    full = states(
        rules,
        billing=QueueState(waiting=9, agents_available=1),
        general=QueueState(waiting=10, agents_available=4),
    )
    decision = run(rules, make_request, queues=full, wants_human=True)
    assert decision.target is HandoffTarget.CALLBACK
    assert decision.queue == "billing"
    assert decision.say == "EN callback."
    assert ids(decision)[-3:] == [
        "queue.unavailable",
        "overflow.unavailable",
        "queue_full.callback",
    ]


def test_a_queue_missing_from_the_snapshot_counts_as_unstaffed(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, queues={}, wants_human=True, intent="sales")
    assert decision.target is HandoffTarget.CALLBACK


# ------------------------------------------------------------------- legal threat and safety


def test_a_legal_threat_goes_to_a_person_first_even_when_the_queue_is_full(
    rules: Rules, make_request: RequestFactory
) -> None:
    full = states(rules, billing=QueueState(waiting=50, agents_available=1))
    decision = run(rules, make_request, queues=full, reason=EscalationReason.LEGAL_THREAT)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.queue == "billing"
    assert decision.priority == 80
    assert ids(decision)[-1] == "urgent.human"


def test_a_safety_concern_after_hours_goes_to_the_on_call_queue(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, at=WEDNESDAY_10PM, reason=EscalationReason.SAFETY)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.queue == "oncall"
    assert [d.address for d in decision.destinations] == ["sip:duty@pbx.example.com"]
    assert decision.priority == 90
    assert ids(decision)[-1] == "urgent.on_call"


def test_an_urgent_call_with_no_queue_open_gets_a_top_priority_callback_not_voicemail(
    rules: Rules, make_request: RequestFactory
) -> None:
    no_on_call = dataclasses.replace(
        rules, router=msgspec.structs.replace(rules.router, on_call_queue=None)
    )
    decision = run(no_on_call, make_request, at=WEDNESDAY_10PM, reason=EscalationReason.SAFETY)
    assert decision.target is HandoffTarget.CALLBACK
    assert decision.priority == 100
    assert ids(decision)[-1] == "urgent.callback"


# ------------------------------------------------------------------- languages


def test_a_spanish_caller_hears_spanish_in_a_queue_that_speaks_it(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, language="es", wants_human=True)
    assert decision.queue == "billing"
    assert decision.say == "Le paso con facturación."
    assert run(rules, make_request, language="es").say == "ES gerente."


def test_a_regional_language_tag_uses_its_primary_language(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, language="es-MX")
    assert decision.say == "ES gerente."
    assert decision.rules_fired[1].explanation == "Speaking es, the caller's language."


def test_an_unlisted_language_falls_back_to_the_default_language(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, language="de", wants_human=True, intent="support")
    assert decision.say == "EN person."
    assert decision.queue == "support"
    assert {"language.default", "language.unserved"} <= set(ids(decision))


def test_a_caller_whose_language_the_intent_queue_lacks_goes_to_a_queue_that_speaks_it(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, language="fr", wants_human=True, intent="support")
    assert decision.queue == "general"
    assert decision.say == "FR personne."
    assert "language.queue" in ids(decision)


# ------------------------------------------------------------------- the decision record


def test_modifiers_accumulate_before_the_first_terminal_rule_decides(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(
        rules,
        make_request,
        at=WEDNESDAY_6PM,
        reason=EscalationReason.REPEATED_FAILURE,
        language="fr",
        vip_tier="gold",
        intent="support",
        attempts=3,
    )
    assert ids(decision) == [
        "intent.queue",
        "language.say",
        "language.queue",
        "priority.reason",
        "vip.priority",
        "human.repeated_failure",
        "human.attempts",
        "human.queue",
    ]
    assert decision.priority == 50
    assert decision.queue == "general"


def test_destinations_come_from_the_rules_never_from_the_request(
    rules: Rules, make_request: RequestFactory
) -> None:
    context = HandoffContext(collected={"transfer_to": "+15559999999", "sip": "sip:x@evil.test"})
    decision = run(rules, make_request, context=context, wants_human=True)
    configured = {d.address for q in rules.queues.values() for d in q.destinations}
    assert decision.destinations
    assert {d.address for d in decision.destinations} <= configured


def test_a_decision_is_stable_per_request_and_names_the_rules_version(
    rules: Rules, make_request: RequestFactory
) -> None:
    first = run(rules, make_request)
    again = run(rules, make_request)
    other = run(rules, make_request, request_id="req-2")
    assert first.decision_id == again.decision_id
    assert first.decision_id != other.decision_id
    assert first.rules_version == rules.version
    assert first.decided_at == WEDNESDAY_10AM
    assert (first.call_id, first.request_id) == ("call-1", "req-1")


def test_explanations_never_carry_what_the_caller_said(
    rules: Rules, make_request: RequestFactory
) -> None:
    context = HandoffContext(summary="Jane Roe at +15550123456 is angry", collected={"e": "j@x.y"})
    decision = run(rules, make_request, context=context, vip_tier="jane-roe")
    text = msgspec.json.encode(decision.rules_fired).decode()
    for secret in ("Jane", "+1555012", "j@x.y", "jane-roe"):
        assert secret not in text


def test_the_decision_id_is_the_uuid5_of_call_and_request(
    rules: Rules, make_request: RequestFactory
) -> None:
    decision = run(rules, make_request, call_id="call-9", request_id="r-7")
    assert decision.decision_id == str(uuid.uuid5(DECISION_NAMESPACE, "call-9/r-7"))
