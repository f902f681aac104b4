"""The rules file: the shipped default, and bad files refused with a message naming the fault."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchboard.contracts.escalation import HandoffTarget
from switchboard.escalation.rules_file import RulesError, load_rules, parse_rules

GOOD = (Path(__file__).parent / "data" / "rules.toml").read_text()


def refused(text: str) -> str:
    with pytest.raises(RulesError) as info:
        parse_rules(text.encode(), "test.toml")
    message = str(info.value)
    assert message.startswith("Rules file test.toml ")
    return message


def test_the_shipped_default_has_the_four_queues_with_numbers_hours_and_capacity() -> None:
    rules = load_rules()
    assert {"billing", "support", "sales", "general"} <= set(rules.queues)
    for queue in rules.queues.values():
        assert queue.destinations
        for destination in queue.destinations:
            assert re.match(r"^(\+1555\d{7}|sips?:\S+@\S+)$", destination.address)
        assert queue.capacity.max_waiting > 0
        assert queue.state.agents_available > 0
    assert rules.queues["billing"].hours.zone.key == "America/New_York"
    assert not rules.queues["billing"].hours.always_open
    # The front desk never closes, so a demo at any hour reaches a person.
    assert rules.queues["general"].hours.always_open
    assert rules.source.startswith("(default)")


def test_the_shipped_default_speaks_english_and_other_languages_for_every_target() -> None:
    rules = load_rules()
    assert {"en", "es", "fr"} <= set(rules.languages)
    for language in rules.languages:
        for target in HandoffTarget:
            assert rules.say(language, target)


def test_the_version_is_a_hash_of_the_file_contents() -> None:
    assert parse_rules(GOOD.encode()).version == parse_rules(GOOD.encode()).version
    assert parse_rules(GOOD.encode()).version != parse_rules((GOOD + "\n# x\n").encode()).version


def test_a_misspelt_key_is_refused_not_ignored() -> None:
    message = refused(GOOD.replace('label = "Sales"', 'lable = "Sales"'))
    assert "unknown field `lable`" in message
    assert "$.queues.sales" in message


def test_a_destination_that_is_not_a_number_or_sip_uri_is_refused() -> None:
    message = refused(GOOD.replace('"+15550100201"', '"call support please"'))
    assert "$.queues.support.destinations[0].address" in message


def test_a_queue_without_destinations_is_refused() -> None:
    message = refused(GOOD.replace('[{ id = "sales-1", address = "+15550100301" }]', "[]"))
    assert "$.queues.sales.destinations" in message


def test_an_unknown_timezone_is_refused_naming_the_queue() -> None:
    message = refused(GOOD.replace('timezone = "UTC"', 'timezone = "Moon/Base"'))
    assert "queue 'oncall'" in message
    assert "Moon/Base" in message


def test_unreadable_hours_are_refused_naming_the_queue() -> None:
    message = refused(GOOD.replace('mon = ["08:00-20:00"]', 'mon = ["8am-8pm"]'))
    assert "queue 'general'" in message
    assert "'8am-8pm'" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('queue = "sales"', 'queue = "marketing"', "intents.sales.queue names queue 'marketing'"),
        ('overflow = "general"', 'overflow = "billing"', "queues.billing.overflow names the queue"),
        ('on_call_queue = "oncall"', 'on_call_queue = "night"', "router.on_call_queue"),
        ('[languages.fr]\nqueue = "general"', '[languages.fr]\nqueue = "x"', "languages.fr.queue"),
        ('default_language = "en"', 'default_language = "de"', "default_language 'de'"),
        ('default_intent = "general"', 'default_intent = "other"', "default_intent 'other'"),
        ('aliases = ["refund", "invoice"]', 'aliases = ["sales"]', "alias 'sales' is used by both"),
        ("base = 10", "base = 101", "priority.base is above priority.maximum"),
        ('es = "Le paso', 'de = "Le paso', "has a line for 'de'"),
    ],
)
def test_references_between_sections_are_checked(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    assert expected in refused(GOOD.replace(old, new, 1))


def test_a_language_missing_a_line_is_refused_naming_the_line() -> None:
    message = refused(GOOD.replace('voicemail = "FR messagerie."\n', ""))
    assert "missing required field `voicemail`" in message
    assert "$.languages.fr.say" in message


def test_a_negative_capacity_is_refused() -> None:
    message = refused(
        GOOD.replace("capacity = { max_waiting = 10 }", "capacity = { max_waiting = -1 }", 1)
    )
    assert "$.queues.support.capacity.max_waiting" in message


def test_text_that_is_not_toml_is_refused() -> None:
    assert "is not valid TOML" in refused("[queues\nbilling = ")


def test_a_missing_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(RulesError, match=re.escape(f"Cannot read rules file {path}")):
        load_rules(path)


def test_a_queue_name_that_is_not_a_lower_case_token_is_refused() -> None:
    message = refused(GOOD.replace("[queues.oncall]", "[queues.On-Call]"))
    assert "queues key 'On-Call' must be a lower-case name" in message
