"""Every scenario through the real services and the real OpenAI plugin.

The backends run as subprocesses on a real nats-server (``stack``); the voice worker's
agent graph runs here with ``SB_BRAIN=openai`` against the scripted OpenAI-compatible
server, which answers like the rules brain. This is the path a deployment with a model
takes: the plugin, HTTP streaming, tool schemas, the fallback chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard.simulation import scenario as scenarios
from switchboard.simulation.runner import run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.testing.openai_server import OpenAIServer
from switchboard.testing.rules_model import rules_policy
from switchboard.voice import providers
from switchboard.voice.wiring import Bus, open_bus
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def voice_bus(stack: Stack) -> AsyncIterator[tuple[Bus, SimulationSettings]]:
    settings = SimulationSettings(
        nats_url=stack.nats.url, brain="openai", llm_retries=0, llm_attempt_timeout_s=3.0
    )
    bus = await open_bus(settings)
    try:
        yield bus, settings
    finally:
        await bus.close()


@pytest.mark.parametrize("path", scenarios.discover(ROOT / "scenarios"), ids=lambda p: p.stem)
async def test_each_scenario_runs_through_the_plugin_and_the_real_services(
    path: Path, voice_bus: tuple[Bus, SimulationSettings], openai_server: OpenAIServer
) -> None:
    bus, settings = voice_bus
    openai_server.policy = rules_policy()
    chat_model = providers.language_model(settings, openai_server.env())
    report = await run_scenario(scenarios.load(path), bus, settings, chat_model=chat_model)
    assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
    assert len(openai_server.chat_requests) > 0
    kinds = [e.kind for e in report.events]
    assert kinds[0] == "call.started"
    assert kinds[-1] == "call.ended"
