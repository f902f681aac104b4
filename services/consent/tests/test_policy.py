"""Consent policy: jurisdiction from numbers and trunks, ask/notify, notices, bad files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from switchboard.consent.jurisdiction import jurisdiction_of, nanp_area_codes
from switchboard.consent.policy import PolicyError, load_policy, parse_policy
from switchboard.consent.policy_source import PolicySource
from switchboard.contracts.consent import ConsentMode, ConsentPolicyQuery

ALL_PARTY_STATES = ["CA", "CT", "DE", "FL", "IL", "MD", "MA", "MI", "MT", "NV", "NH", "PA", "WA"]

SHIPPED = load_policy(None)


def _ask(number: str | None, trunk: str | None = None, language: str = "en") -> ConsentMode:
    return SHIPPED.decide(
        ConsentPolicyQuery(call_id="c", caller_number=number, trunk=trunk, language=language)
    ).mode


@pytest.mark.parametrize("state", ALL_PARTY_STATES)
def test_every_area_code_of_an_all_party_state_asks(state: str) -> None:
    codes = [c for c, j in nanp_area_codes().items() if j == f"US-{state}"]
    assert codes, f"no area codes shipped for US-{state}"
    for code in codes:
        number = f"+1{code}5550100"
        assert jurisdiction_of(number) == f"US-{state}"
        assert _ask(number) is ConsentMode.ASK, number


def test_the_area_code_table_covers_most_of_the_numbering_plan() -> None:
    table = nanp_area_codes()
    us_states = {j for j in table.values() if j.startswith("US-")}
    assert len(us_states) == 51  # 50 states and DC
    assert len(table) > 400


@pytest.mark.parametrize(
    ("number", "jurisdiction"),
    [
        ("+12125550100", "US-NY"),
        ("+15125550100", "US-TX"),
        ("+14045550100", "US-GA"),
        ("+15035550100", "US-OR"),
        ("+14165550100", "CA"),
    ],
)
def test_one_party_places_notify(number: str, jurisdiction: str) -> None:
    policy = SHIPPED.decide(ConsentPolicyQuery(call_id="c", caller_number=number))
    assert policy.jurisdiction == jurisdiction
    assert policy.mode is ConsentMode.NOTIFY
    assert policy.notice_version.startswith("notify-")


@pytest.mark.parametrize(
    ("number", "jurisdiction"),
    [
        (None, "unknown"),
        ("", "unknown"),
        ("not a number", "unknown"),
        ("+1 415", "unknown"),
        ("+18005550100", "US"),  # toll-free: the state cannot be told
        ("+19995550100", "unknown"),  # no such area code
        ("+4930123456", "DE"),  # no rule for Germany: the default asks
        ("+9991234567", "unknown"),  # no such country code
    ],
)
def test_unknown_or_unlisted_places_ask(number: str | None, jurisdiction: str) -> None:
    policy = SHIPPED.decide(ConsentPolicyQuery(call_id="c", caller_number=number))
    assert policy.jurisdiction == jurisdiction
    assert policy.mode is ConsentMode.ASK


def test_numbers_with_separators_are_understood() -> None:
    assert jurisdiction_of("+1 (415) 555-0100") == "US-CA"
    assert jurisdiction_of("+44 20 7946 0000") == "GB"


def test_the_notice_comes_in_the_callers_language_with_a_version_naming_it() -> None:
    de = SHIPPED.decide(ConsentPolicyQuery(call_id="c", caller_number="+4930123456", language="de"))
    assert de.language == "de"
    assert de.notice_version == "ask-2025-01:de"
    assert "aufgezeichnet" in de.notice_text
    assert "KI" in de.ai_disclosure
    regional = SHIPPED.decide(ConsentPolicyQuery(call_id="c", language="es-MX"))
    assert regional.language == "es"
    missing = SHIPPED.decide(ConsentPolicyQuery(call_id="c", language="ja"))
    assert missing.language == "en"
    assert missing.notice_version == "ask-2025-01:en"


POLICY = """
default_language = "en"
[default]
mode = "ask"
[ai_disclosure]
en = "AI here."
[notices.ask]
version = "ask-v{n}"
[notices.ask.text]
en = "May we record? ({n})"
[notices.notify]
version = "notify-v{n}"
[notices.notify.text]
en = "We record. ({n})"
[jurisdictions."US-*"]
mode = "notify"
[jurisdictions."US-TX"]
mode = "ask"
notice = "ask"
[trunks]
eu-trunk = "DE"
tx-trunk = "US-TX"
"""


def test_per_jurisdiction_overrides_and_trunk_pins_apply() -> None:
    policy = parse_policy(POLICY.format(n=1), "test")
    texas = policy.decide(ConsentPolicyQuery(call_id="c", caller_number="+15125550100"))
    assert (texas.jurisdiction, texas.mode) == ("US-TX", ConsentMode.ASK)
    ny = policy.decide(ConsentPolicyQuery(call_id="c", caller_number="+12125550100"))
    assert ny.mode is ConsentMode.NOTIFY
    pinned = policy.decide(
        ConsentPolicyQuery(call_id="c", caller_number="+12125550100", trunk="eu-trunk")
    )
    assert (pinned.jurisdiction, pinned.mode) == ("DE", ConsentMode.ASK)
    other_trunk = policy.decide(
        ConsentPolicyQuery(call_id="c", caller_number="+12125550100", trunk="unlisted")
    )
    assert other_trunk.jurisdiction == "US-NY"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("this is = not [toml", "not valid TOML"),
        (
            POLICY.format(n=1).replace('[default]\nmode = "ask"', '[default]\nmode = "notify"'),
            "must be 'ask'",
        ),
        (
            POLICY.format(n=1).replace(
                'mode = "ask"\nnotice = "ask"', 'mode = "ask"\nnotice = "x"'
            ),
            "needs notice 'x'",
        ),
        (POLICY.format(n=1).replace("[trunks]", "[trunks]\nbad = 'Germany'"), "$.trunks"),
        (
            POLICY.format(n=1).replace('[jurisdictions."US-*"]', '[jurisdictions."usa"]'),
            "$.jurisdictions",
        ),
        (
            POLICY.format(n=1).replace("[ai_disclosure]\nen", "[ai_disclosure]\nfr"),
            "[ai_disclosure] has no text",
        ),
        (
            POLICY.format(n=1).replace('[default]\nmode = "ask"', '[default]\nmode = "maybe"'),
            "$.default.mode",
        ),
        (
            POLICY.format(n=1).replace('[default]\nmode = "ask"', '[default]\nmode = "ask"\nx = 1'),
            "unknown field `x`",
        ),
        (
            POLICY.format(n=1) + "\n[jurisdictions.unknown]\nmode = 'notify'\n",
            "[jurisdictions.unknown] mode must be 'ask'",
        ),
        (POLICY.format(n=1).replace('en = "May we', 'de = "May we'), "no text in the default"),
    ],
)
def test_bad_policy_files_are_refused_with_a_message_naming_the_problem(
    text: str, fragment: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "edited.toml")
    assert "edited.toml" in str(refused.value)
    assert fragment in str(refused.value)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    # A distinct mtime even on coarse-grained file systems.
    stamp = time.time_ns() + next(_bump) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


_bump = iter(range(1, 10_000))


def test_a_bad_edit_keeps_the_previous_policy_and_a_good_one_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    _write(path, POLICY.format(n=1))
    source = PolicySource(path)
    query = ConsentPolicyQuery(call_id="c", caller_number="+12125550100")
    assert source.current.decide(query).notice_version == "notify-v1:en"

    _write(path, "[default]\nmode = 'notify'\n")
    assert source.check() is False
    assert source.last_error is not None
    assert "invalid" in source.last_error
    assert source.current.decide(query).notice_version == "notify-v1:en"

    path.unlink()
    assert source.check() is False
    assert source.last_error is not None
    assert "cannot be read" in source.last_error
    assert source.current.decide(query).notice_version == "notify-v1:en"

    _write(path, POLICY.format(n=2))
    assert source.check() is True
    assert source.last_error is None
    assert source.current.decide(query).notice_version == "notify-v2:en"
    assert source.check() is False  # unchanged file: nothing to do


def test_a_service_cannot_start_on_a_bad_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[default]\nmode = 'notify'\n")
    with pytest.raises(PolicyError):
        PolicySource(path)
