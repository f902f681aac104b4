"""Allow-list, calls-per-second and concurrency caps (a place in line, not a refusal),
including hostile destinations."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.contracts import Destination, FailureReason
from switchboard.runtime.settings import SettingsError
from switchboard.sip_bridge.admission import Admission, AdmissionControl, Refusal
from switchboard.sip_bridge.allowlist import DestinationAllowList
from switchboard.sip_bridge.limits import ConcurrencyCap, TokenBucket
from switchboard.sip_bridge.settings import DEFAULT_BLOCKED_PREFIXES
from switchboard.sip_bridge.slots import DialSlots


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def allow_list(allow: str) -> DestinationAllowList:
    return DestinationAllowList.from_config(
        allow, DEFAULT_BLOCKED_PREFIXES, "+1", trunks=["ST_main"]
    )


def dest(address: str, trunk_id: str | None = None) -> Destination:
    # Built directly, not decoded: the policy must not rely on the decoder's validation.
    return Destination(id="d", address=address, trunk_id=trunk_id)


CONFIGURED = "+1415555*,+442071838750,sip:*@pbx.example.com,sip:queue@partner.example.net"


@pytest.mark.parametrize(
    "address",
    [
        "+14155550100",
        "+442071838750",
        "sip:billing@pbx.example.com",
        "sip:billing@PBX.Example.COM",
        "sip:1001@pbx.example.com",
        "sip:queue@partner.example.net",
        "sip:+14155550100@pbx.example.com",
    ],
)
def test_configured_destinations_are_allowed(address: str) -> None:
    assert allow_list(CONFIGURED).check(dest(address)).allowed


@pytest.mark.parametrize(
    ("address", "rule_fragment"),
    [
        ("+19005550100", "premium"),
        ("+19765550100", "premium"),
        ("+18095550100", "premium"),  # Dominican Republic, dialled like a US number.
        ("+12685550100", "premium"),  # Antigua: the classic one-ring scam.
        ("+14415550100", "premium"),
        ("+882345678901", "premium"),  # International networks.
        ("+447000123456", "premium"),  # UK "personal" numbers.
        ("+442071838751", "international"),  # Next to an exact entry, but not it.
        ("+33142685300", "international"),
        ("+14165550100", "not on the allow-list"),  # Outside the allowed prefix.
        ("sip:+19005550100@pbx.example.com", "premium"),  # Premium hidden in a SIP URI.
        ("sip:+442079460000@pbx.example.com", "international"),
        ("sip:011449065550100@pbx.example.com", "allowed exactly"),  # Dial string via gateway.
        ("sip:billing@pbx.example.com.evil.example", "not on the allow-list"),
        ("sip:other@partner.example.net", "not on the allow-list"),
        ("+14155550100\n", "plain"),  # Trailing newline: regexes with `$` would let it in.
        ("+１４１５５５５０１００", "plain"),  # Full-width digits.
        ("sip:billing@pbx.example.com@evil.example", "plain"),
        ("tel:+14155550100", "plain"),
        ("+1 415 555 0100", "plain"),
        ("", "plain"),
    ],
)
def test_hostile_and_unlisted_destinations_are_refused(address: str, rule_fragment: str) -> None:
    verdict = allow_list(CONFIGURED).check(dest(address))
    assert not verdict.allowed
    assert rule_fragment in verdict.rule
    if address:
        assert address.strip() not in verdict.rule  # Rules are loggable: no addresses.


def test_a_broad_prefix_does_not_open_blocked_ranges() -> None:
    broad = allow_list("+1*")
    assert broad.check(dest("+12125550100")).allowed
    assert not broad.check(dest("+19005550100")).allowed
    assert not broad.check(dest("+18765550100")).allowed


def test_an_exact_entry_overrides_a_block_because_an_operator_vetted_it() -> None:
    vetted = allow_list("+18095550123")
    assert vetted.check(dest("+18095550123")).allowed
    assert not vetted.check(dest("+18095550124")).allowed


def test_a_destination_naming_an_unconfigured_trunk_is_refused() -> None:
    policy = allow_list(CONFIGURED)
    assert policy.check(dest("+14155550100", trunk_id="ST_main")).allowed
    verdict = policy.check(dest("+14155550100", trunk_id="ST_attacker"))
    assert not verdict.allowed
    assert "trunk" in verdict.rule


def test_an_empty_allow_list_stops_the_service_and_a_bare_one_refuses_everything() -> None:
    with pytest.raises(SettingsError, match="SB_TRANSFER_ALLOW"):
        allow_list(" , ")
    assert not DestinationAllowList().check(dest("+14155550100")).allowed


def test_without_a_home_prefix_only_the_block_list_stops_foreign_numbers() -> None:
    worldwide = DestinationAllowList.from_config("+44*", DEFAULT_BLOCKED_PREFIXES, "", trunks=None)
    assert worldwide.check(dest("+442071838750")).allowed
    assert not worldwide.check(dest("+449065550100")).allowed


@pytest.mark.parametrize(
    ("allow", "block", "home"),
    [
        ("+1415*5", "", "+1"),
        ("415-555-0100", "", "+1"),
        ("sip:*@", "", "+1"),
        ("+14155550100", "1900", "+1"),
        ("+14155550100", "", "1"),
    ],
)
def test_malformed_configuration_stops_the_service_with_a_named_setting(
    allow: str, block: str, home: str
) -> None:
    with pytest.raises(SettingsError, match="SB_TRANSFER_"):
        DestinationAllowList.from_config(allow, block, home, trunks=None)


def test_the_token_bucket_allows_a_burst_then_the_sustained_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_take()
    assert not bucket.try_take()
    clock.now += 60  # A long pause refills only up to the burst.
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]


def test_the_concurrency_cap_counts_slots_and_refuses_a_double_release() -> None:
    cap = ConcurrencyCap(2)
    assert cap.try_acquire()
    assert cap.try_acquire()
    assert not cap.try_acquire()
    cap.release()
    assert cap.try_acquire()
    cap.release()
    cap.release()
    with pytest.raises(RuntimeError):
        cap.release()


def admission(
    clock: FakeClock, *, cps: float = 1.0, burst: int = 2, limit: int = 5, line: int = 10
) -> AdmissionControl:
    slots = DialSlots(ConcurrencyCap(limit), TokenBucket(cps, burst, clock=clock), line)
    return AdmissionControl(allow_list(CONFIGURED), slots)


OK = [Destination(id="main", address="+14155550100")]


def admitted(decision: Admission | Refusal) -> Admission:
    assert isinstance(decision, Admission), decision
    return decision


def test_admission_skips_refused_and_repeated_destinations_but_keeps_the_order() -> None:
    p = admission(FakeClock())
    decision = p.admit(
        [
            Destination(id="premium", address="+19005550100"),
            Destination(id="main", address="+14155550100"),
            Destination(id="main-again", address="+14155550100"),
            Destination(id="backup", address="sip:backup@pbx.example.com"),
        ]
    )
    assert isinstance(decision, Admission)
    assert [d.id for d in decision.screened.allowed] == ["main", "backup"]
    assert [s.destination.id for s in decision.screened.skipped] == ["premium", "main-again"]


def test_admission_refuses_when_no_destination_is_allowed() -> None:
    p = admission(FakeClock())
    decision = p.admit([Destination(id="x", address="+19005550100")])
    assert isinstance(decision, Refusal)
    assert decision.reason is FailureReason.REJECTED_BY_POLICY
    assert p.slots.cap.in_use == 0
    assert p.slots.bucket.try_take()  # No token was spent on the refusal.


async def test_past_the_calls_per_second_cap_a_transfer_gets_a_place_in_line() -> None:
    clock = FakeClock()
    p = admission(clock, cps=1.0, burst=2)
    assert admitted(p.admit(OK)).ticket.granted
    assert admitted(p.admit(OK)).ticket.granted
    third = admitted(p.admit(OK)).ticket
    fourth = admitted(p.admit(OK)).ticket
    assert not third.granted
    assert (p.slots.position(third), p.slots.estimated_wait(third)) == (1, 1.0)
    assert (p.slots.position(fourth), p.slots.estimated_wait(fourth)) == (2, 2.0)
    clock.now += 1.0
    await asyncio.wait_for(p.slots.wait(third), 1.0)
    assert third.granted
    assert p.slots.cap.in_use == 3
    assert p.slots.position(fourth) == 1


async def test_past_the_concurrency_cap_a_transfer_waits_for_a_release_without_an_estimate() -> (
    None
):
    clock = FakeClock()
    p = admission(clock, cps=100.0, burst=100, limit=2)
    admitted(p.admit(OK))
    admitted(p.admit(OK))
    waiting = admitted(p.admit(OK)).ticket
    assert not waiting.granted
    assert p.slots.estimated_wait(waiting) is None  # It depends on how long calls last.
    waiter = asyncio.ensure_future(p.slots.wait(waiting))
    p.release()
    await asyncio.wait_for(waiter, 1.0)
    assert waiting.granted
    assert p.slots.cap.in_use == 2


def test_a_full_line_refuses_as_rate_limited_without_spending_anything() -> None:
    p = admission(FakeClock(), cps=1.0, burst=1, line=1)
    admitted(p.admit(OK))
    admitted(p.admit(OK))
    refused = p.admit(OK)
    assert isinstance(refused, Refusal)
    assert refused.reason is FailureReason.RATE_LIMITED
    assert "already waiting" in refused.detail
    assert (p.slots.cap.in_use, p.slots.waiting) == (1, 1)


async def test_a_place_given_up_moves_the_line_on() -> None:
    clock = FakeClock()
    p = admission(clock, cps=1.0, burst=1)
    admitted(p.admit(OK))
    first = admitted(p.admit(OK)).ticket
    second = admitted(p.admit(OK)).ticket
    p.slots.leave(first)  # Its transfer was cancelled.
    assert not first.granted
    assert (p.slots.waiting, p.slots.position(second)) == (1, 1)


async def test_pacing_waits_for_the_next_token() -> None:
    slots = DialSlots(ConcurrencyCap(1), TokenBucket(50.0, 1), 10)
    p = AdmissionControl(allow_list(CONFIGURED), slots)
    assert slots.bucket.try_take()
    await p.pace()  # Returns after ~20 ms instead of failing the failover attempt.
    assert not slots.bucket.try_take()


FOREIGN = (
    "sip:desk@evil.example.net",
    "sips:x@203.0.113.7",
    "sip:billing@pbx.example.com.evil.example.net",
    "+14155550100",
)
"""Destinations outside ``sip:*@pbx.example.com`` (and no number prefix)."""


@pytest.mark.parametrize("allow", ["", "sip:*@pbx.example.com"])
def test_every_driver_refuses_the_same_destinations(allow: str) -> None:
    """Finding 12: the simulated carrier's allow-list admitted foreign SIP domains
    (``sip:desk@evil.example.net``, ``sips:x@203.0.113.7``) that the LiveKit driver refuses.
    The list is the configured one whatever the driver; an empty one is a settings error."""
    from switchboard.sip_bridge.assembly import build_admission
    from switchboard.sip_bridge.settings import DriverChoice, SipBridgeSettings

    settings = SipBridgeSettings(transfer_allow=allow, livekit_sip_trunk_id="ST_main")
    verdicts: dict[DriverChoice, list[bool] | str] = {}
    for choice in (DriverChoice.SIMULATED, DriverChoice.LIVEKIT):
        try:
            admission = build_admission(settings, choice)
        except SettingsError as exc:
            verdicts[choice] = str(exc)
            continue
        verdicts[choice] = [admission.allow_list.check(dest(a)).allowed for a in FOREIGN]
    assert verdicts[DriverChoice.SIMULATED] == verdicts[DriverChoice.LIVEKIT]
    if allow:
        assert verdicts[DriverChoice.SIMULATED] == [False] * len(FOREIGN)
    else:
        assert "SB_TRANSFER_ALLOW" in str(verdicts[DriverChoice.SIMULATED])
