"""What the rules brain and the screening read from a caller's sentence."""

from __future__ import annotations

import pytest

from switchboard.contracts.consent import ConsentDecision
from switchboard.contracts.escalation import EscalationReason, EscalationTrigger
from switchboard.voice import understanding as u
from switchboard.voice.triggers import FailureTracker, detect_escalation, revokes_consent


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("Yes, that's fine.", ConsentDecision.GRANTED),
        ("Sure, go ahead", ConsentDecision.GRANTED),
        ("No problem at all", ConsentDecision.GRANTED),
        ("No, I'd rather not be recorded.", ConsentDecision.DENIED),
        ("Please don't record me", ConsentDecision.DENIED),
        ("Yes... well, no", ConsentDecision.UNCLEAR),
        ("What's the weather like?", ConsentDecision.UNCLEAR),
        ("I want to speak to a manager", ConsentDecision.UNCLEAR),
        ("", ConsentDecision.UNCLEAR),
    ],
)
def test_consent_answers_are_read_conservatively(text: str, decision: ConsentDecision) -> None:
    assert u.consent_answer(text) is decision


@pytest.mark.parametrize(
    ("text", "department"),
    [
        ("I have a question about my bill", "billing"),
        ("I was charged twice", "billing"),
        ("My internet keeps dropping", "support"),
        ("I forgot my password", "support"),
        ("I'd like to buy a headset", "sales"),
        ("What does the premium plan cost? What's the price?", "sales"),
        ("Hello there", None),
    ],
)
def test_department_intents_are_recognised(text: str, department: str | None) -> None:
    assert u.intent(text) == department


@pytest.mark.parametrize(
    ("text", "email"),
    [
        ("it's jane.doe@example.com thanks", "jane.doe@example.com"),
        ("It's jane dot doe at example dot com.", "jane.doe@example.com"),
        ("JANE@EXAMPLE.ORG", "jane@example.org"),
        ("jane at example", None),
        ("no email for you", None),
    ],
)
def test_emails_are_found_typed_or_spoken(text: str, email: str | None) -> None:
    assert u.find_email(text) == email


def test_addresses_are_captured_from_the_house_number_on() -> None:
    assert u.find_address("Ship it to 221 Baker Street, Springfield, 12345.") == (
        "221 Baker Street, Springfield, 12345"
    )
    assert u.find_address("somewhere nice") is None


def test_corrections_name_the_steps_in_the_order_said() -> None:
    assert u.wants_to_go_back("Wait, that's wrong, change my email")
    assert u.correction_targets("fix my address and my email") == ["address", "email"]
    assert not u.wants_to_go_back("221 Baker Street")


def test_goodbyes_and_amounts() -> None:
    assert u.is_goodbye("Thanks, bye.")
    assert not u.is_goodbye("I need help")
    assert u.find_amount("a refund of $120 please") == 120.0
    assert u.find_amount("thirty dollars") is None


@pytest.mark.parametrize(
    ("text", "reason", "wants_human"),
    [
        ("Let me talk to a manager.", EscalationReason.CALLER_REQUEST, False),
        ("get me your supervisor", EscalationReason.CALLER_REQUEST, False),
        ("I want to speak to a real person", EscalationReason.CALLER_REQUEST, True),
        ("Put me through to a human being.", EscalationReason.CALLER_REQUEST, True),
        ("I'll call my lawyer about this", EscalationReason.LEGAL_THREAT, True),
        ("I'm going to sue you", EscalationReason.LEGAL_THREAT, True),
        ("I smell gas in my kitchen", EscalationReason.SAFETY, True),
        ("the manager said I might hurt myself", EscalationReason.SAFETY, True),
    ],
)
def test_escalation_phrases_are_detected_without_a_model(
    text: str, reason: EscalationReason, wants_human: bool
) -> None:
    ask = detect_escalation(text)
    assert ask is not None
    assert ask.reason is reason
    assert ask.trigger is EscalationTrigger.PHRASE
    assert ask.wants_human is wants_human


def test_ordinary_sentences_do_not_escalate() -> None:
    assert detect_escalation("I have a question about my bill") is None
    assert detect_escalation("My personal details changed") is None


def test_revocation_phrases() -> None:
    assert revokes_consent("Actually, please stop recording.")
    assert revokes_consent("Do not record this")
    assert revokes_consent("I withdraw my consent")
    assert not revokes_consent("Is this call recorded?")


def test_repeated_failure_escalates_at_the_limit_and_resets() -> None:
    tracker = FailureTracker(limit=3)
    tracker.observe_turn("That's not what I asked")
    tracker.observe_turn("my bill")
    tracker.observe_turn("my bill")
    assert tracker.escalation() is None
    tracker.observe_tool_error()
    ask = tracker.escalation()
    assert ask is not None
    assert ask.reason is EscalationReason.REPEATED_FAILURE
    assert ask.trigger is EscalationTrigger.FAILURE_COUNT
    tracker.reset()
    assert tracker.escalation() is None
