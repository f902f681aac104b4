"""Every scenario through the real OpenAI plugin, over HTTP, against the scripted
OpenAI-compatible server answering like the rules brain; and a provider outage mid-call."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from switchboard.simulation import scenario as scenarios
from switchboard.simulation.runner import Probe, run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.testing.crm import RunningCrm
from switchboard.testing.fake_backends import Backends
from switchboard.testing.openai_server import CutStream, Delay, OpenAIServer, say
from switchboard.testing.rules_model import rules_policy
from switchboard.voice import providers
from switchboard.voice.brain.decisions import NO_AUTHORITY
from switchboard.voice.wiring import Bus

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "scenarios"


def _openai(settings: SimulationSettings) -> SimulationSettings:
    return msgspec.structs.replace(
        settings, brain="openai", llm_retries=0, llm_attempt_timeout_s=2.0
    )


@pytest.mark.parametrize("path", scenarios.discover(SCENARIOS), ids=lambda p: p.stem)
async def test_every_scenario_passes_through_the_openai_plugin(
    path: Path,
    backends: Backends,
    demo_crm: RunningCrm,
    bus: Bus,
    settings: SimulationSettings,
    openai_server: OpenAIServer,
) -> None:
    openai_server.policy = rules_policy()
    settings = _openai(settings)
    chat_model = providers.language_model(settings, openai_server.env())
    report = await run_scenario(scenarios.load(path), bus, settings, chat_model=chat_model)
    assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
    requests = list(openai_server.chat_requests)
    assert requests, "the model was never asked"
    assert {r.model for r in requests} == {settings.openai_llm_model}
    # Every agent after consent offers the decisions as tools.
    offered = [set(r.tool_names) for r in requests if "route_to_department" in r.tool_names]
    assert all({"escalate", "revoke_recording_consent", "end_call"} <= t for t in offered)


async def test_an_outage_mid_call_goes_on_with_the_rules_brain_in_safe_mode(
    backends: Backends,
    demo_crm: RunningCrm,
    bus: Bus,
    settings: SimulationSettings,
    openai_server: OpenAIServer,
    tmp_path: Path,
) -> None:
    openai_server.policy = rules_policy()
    settings = _openai(settings)
    chat_model = providers.language_model(settings, openai_server.env())
    script = tmp_path / "outage.toml"
    script.write_text(
        """
name = "Manager asked for, then every model is down"
call_id = "outage"
caller_number = "+14155550123"
turns = [
    "Yes, that's fine.",
    "Let me talk to a manager.",
    "I want a refund of $40.",
    "Yes please.",
]
[carrier]
outcomes = ["answer"]
[expect]
outcome = "transferred"
"""
    )
    turns = 0

    async def before_turn() -> None:
        nonlocal turns
        turns += 1
        if turns == 3:  # before the refund request, every OpenAI model starts answering 503
            openai_server.faults.start_outage()

    report = await run_scenario(
        scenarios.load(script),
        bus,
        settings,
        probe=Probe(before_turn=before_turn),
        chat_model=chat_model,
    )
    lines = [line.text for line in report.transcript if line.speaker != "caller"]
    assert NO_AUTHORITY in lines  # the rules brain took over, in safe mode
    assert demo_crm.book.taken == {}  # and granted nothing
    assert "case.credit_granted" not in [e.kind for e in report.events]
    assert report.outcome == "transferred"  # "Yes please" to its offer of a person
    assert backends.router.requests[-1].wants_human
    assert report.errors == []


async def test_a_stream_cut_and_a_stalled_answer_fall_back_and_the_call_goes_on(
    backends: Backends,
    demo_crm: RunningCrm,
    bus: Bus,
    settings: SimulationSettings,
    openai_server: OpenAIServer,
) -> None:
    openai_server.policy = rules_policy()
    settings = msgspec.structs.replace(_openai(settings), llm_attempt_timeout_s=1.0)
    chat_model = providers.language_model(settings, openai_server.env())
    # The answer to "My internet keeps dropping." is cut after two chunks; a later answer
    # stalls past the attempt timeout.
    openai_server.faults.fail(3, CutStream(after_chunks=2, reply=say("Sorry about that.")))
    openai_server.faults.fail(6, Delay(10.0))
    path = SCENARIOS / "b_consent_declined_support_resolved.toml"
    report = await run_scenario(scenarios.load(path), bus, settings, chat_model=chat_model)
    assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
    models = [r.model for r in openai_server.chat_requests]
    assert settings.openai_fallback_llm_model in models  # the second model took over
