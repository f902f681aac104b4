"""Audio mode: scenarios spoken through real VAD, STT and TTS plugin classes."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from switchboard.simulation import report as reports
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.audio.rig import AudioMode
from switchboard.simulation.runner import run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.testing.crm import RunningCrm
from switchboard.testing.fake_backends import Backends
from switchboard.voice.wiring import Bus

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "scenarios" / "audio"
MODE = AudioMode(voices_dir=AUDIO / "voices", speed=4.0)


@pytest.mark.parametrize("path", scenarios.discover(AUDIO), ids=lambda p: p.stem)
async def test_audio_scenarios_pass(
    path: Path, backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings
) -> None:
    settings = msgspec.structs.replace(settings, turn_detection="vad")
    report = await run_scenario(scenarios.load(path), bus, settings, audio=MODE)
    print(reports.render(report))
    print(msgspec.json.format(msgspec.json.encode(report.audio), indent=2).decode())
    assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
