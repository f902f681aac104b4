"""Warm transfers through the real services: the voice worker's agent graph (rules brain,
scripted humans in the consult room) against the consent ledger, the router and the
sip-bridge as subprocesses on a real nats-server.

Each scenario's events are read back from the events stream (not from the runner's own
observer), the humans' transcript is checked against the ``transfer.briefed`` event, and
the bridge is asked what it still holds for the call: no transfer, no open leg.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from switchboard.contracts import LegState, TransferCancelled, TransferLegs, TransferLegsQuery
from switchboard.contracts.subjects import TRANSFER_LEGS
from switchboard.runtime.bus import request
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.report import Report
from switchboard.simulation.runner import run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.voice.transfer.facts import BRIEFING_START
from switchboard.voice.wiring import Bus, open_bus
from tests.stack import Stack
from tests.test_call_flow import read_call_events

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture
async def voice_bus(stack: Stack) -> AsyncIterator[tuple[Bus, SimulationSettings]]:
    settings = SimulationSettings(nats_url=stack.nats.url)
    bus = await open_bus(settings)
    try:
        yield bus, settings
    finally:
        await bus.close()


async def play(
    name: str, stack: Stack, voice_bus: tuple[Bus, SimulationSettings]
) -> tuple[Report, list[str]]:
    """Play a scenario; its report, and its events as the events stream holds them."""
    bus, settings = voice_bus
    report = await run_scenario(scenarios.load(SCENARIOS / f"{name}.toml"), bus, settings)
    assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
    stored = await read_call_events(stack.nats.url, report.call_id)
    return report, [kind for kind, _ in stored]


async def bridge_holds(url: str, call_id: str) -> TransferLegs:
    nc = await nats.connect(url)
    try:
        legs: TransferLegs = await request(
            nc, TRANSFER_LEGS, TransferLegsQuery(call_id=call_id), TransferLegs, 3
        )
        return legs
    finally:
        await nc.close()


def in_order(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(any(w == s for s in it) for w in wanted)


def briefed_after_briefing(report: Report) -> None:
    """Every ``transfer.briefed`` comes after its human heard the briefing."""
    briefed = [e for e in report.events if e.kind == "transfer.briefed"]
    assert briefed
    for event in briefed:
        attempt = event.data["attempt"]
        spoken = [
            u
            for u in report.transcript
            if u.side == "consult" and u.attempt == attempt and u.text.startswith(BRIEFING_START)
        ]
        assert spoken, f"attempt {attempt} was briefed without the briefing"
        assert spoken[0].at_s < event.at_s


async def no_leg_left(stack: Stack, report: Report) -> TransferLegs:
    legs = await bridge_holds(stack.nats.url, report.call_id)
    assert legs.in_progress == []
    assert [leg for leg in legs.legs if leg.state is LegState.OPEN] == []
    return legs


@pytest.mark.parametrize(
    ("name", "failures"),
    [
        ("g1_human_declines_next_accepts", ["human_declined"]),
        ("g2_voicemail_then_accept", ["voicemail"]),
    ],
)
async def test_a_person_who_does_not_take_the_call_is_replaced_by_the_next(
    name: str,
    failures: list[str],
    stack: Stack,
    voice_bus: tuple[Bus, SimulationSettings],
) -> None:
    report, kinds = await play(name, stack, voice_bus)
    assert in_order(
        [
            "escalation.decided",
            "transfer.dialing",
            "transfer.answered",
            "transfer.failed",
            "transfer.dialing",
            "transfer.answered",
            "transfer.briefed",
            "transfer.connected",
            "call.ended",
        ],
        kinds,
    ), kinds
    reasons = [s.reason for t in report.transfers for s in t.steps if s.state == "failed"]
    assert reasons == failures
    briefed_after_briefing(report)
    first = [u for u in report.transcript if u.side == "consult" and u.attempt == 1]
    if failures == ["voicemail"]:
        # The machine heard the opener only: nothing about the caller.
        assert [u.speaker for u in first] == ["briefing", "human"]
        assert not any(u.text.startswith(BRIEFING_START) for u in first)
    legs = await no_leg_left(stack, report)
    assert [(leg.attempt, leg.ended_by) for leg in legs.legs] == [
        (1, "hung up by the bridge"),
        (2, "call ended"),
    ]


async def test_a_caller_who_hangs_up_on_hold_leaves_no_leg_behind(
    stack: Stack, voice_bus: tuple[Bus, SimulationSettings]
) -> None:
    report, kinds = await play("g3_caller_hangs_up_on_hold", stack, voice_bus)
    assert in_order(
        ["transfer.dialing", "transfer.ringing", "transfer.cancelled", "call.ended"], kinds
    ), kinds
    assert "transfer.answered" not in kinds
    cancelled = next(e for e in report.events if e.kind == "transfer.cancelled")
    assert TransferCancelled(**cancelled.data).reason == "caller_hung_up"
    assert report.outcome == "abandoned"
    legs = await no_leg_left(stack, report)
    assert [(leg.attempt, leg.ended_by) for leg in legs.legs] == [(1, "hung up by the bridge")]


async def test_the_person_asks_before_accepting_and_hears_only_what_the_call_knows(
    stack: Stack, voice_bus: tuple[Bus, SimulationSettings]
) -> None:
    report, kinds = await play("g4_human_asks_before_accepting", stack, voice_bus)
    assert in_order(["transfer.answered", "transfer.briefed", "transfer.connected"], kinds)
    briefed_after_briefing(report)
    consult = [(u.speaker, u.text) for u in report.transcript if u.side == "consult"]
    said = dict(itertools.pairwise(consult))
    asked = ("human", "What did the caller say?")
    assert said[asked] == (
        "briefing",
        "What they said last: I want to speak to a person about this.",
    )
    await no_leg_left(stack, report)


async def test_the_caller_talking_on_hold_does_not_cancel_the_transfer(
    stack: Stack, voice_bus: tuple[Bus, SimulationSettings]
) -> None:
    report, kinds = await play("g5_caller_speaks_during_transfer", stack, voice_bus)
    assert "transfer.cancelled" not in kinds
    assert in_order(["transfer.dialing", "transfer.briefed", "transfer.connected"], kinds)
    unheard = [u.text for u in report.transcript if not u.heard]
    assert unheard == ["Okay, thanks.", "Hello? Are you still there?"]
    briefed_after_briefing(report)
    await no_leg_left(stack, report)


async def test_scenario_a_hands_a_consented_recording_over_with_the_call(
    stack: Stack, voice_bus: tuple[Bus, SimulationSettings]
) -> None:
    report, kinds = await play("a_consent_billing_manager_transfer", stack, voice_bus)
    assert "recording.stopped" not in kinds
    ended: Any = next(e for e in report.events if e.kind == "call.ended")
    assert ended.data["recording_continues"] is True
    briefed_after_briefing(report)
    await no_leg_left(stack, report)
