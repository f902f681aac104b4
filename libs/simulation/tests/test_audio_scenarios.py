"""Audio mode: scenarios spoken through Silero VAD, the session's turn handling and the
OpenAI STT/TTS plugin classes (against the scripted server), at four times real time.

Assertions are about order and about what was played and cut, never about exact timings;
the only durations compared are ones the speaker measured in audio time."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from livekit.agents import llm

from switchboard.devstack.natsserver import NatsServer
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.audio import voices
from switchboard.simulation.audio.rig import AudioMode
from switchboard.simulation.report import Report, render
from switchboard.simulation.runner import run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.testing.crm import RunningCrm
from switchboard.testing.fake_backends import Backends
from switchboard.testing.openai_server import OpenAIServer
from switchboard.testing.rules_model import rules_policy
from switchboard.voice import providers
from switchboard.voice.wiring import Bus

REPO = Path(__file__).resolve().parents[3]
AUDIO = REPO / "scenarios" / "audio"
MODE = AudioMode(voices_dir=AUDIO / voices.VOICES, speed=4.0)
TRANSFER_LINE = "I'll find a colleague for you now."
"""What the in-test router tells the caller before a transfer."""


def _audio(settings: SimulationSettings, **changes: object) -> SimulationSettings:
    # The end-of-turn model is LiveKit's; the suite decides turns by voice activity alone.
    return msgspec.structs.replace(settings, turn_detection="vad", **changes)


def _caller_lines() -> list[str]:
    loaded = [scenarios.load(p) for p in scenarios.discover(AUDIO)]
    return [line for s in loaded for line in [*s.lines, *(s.hold.says if s.hold else [])]]


def _missing_voices() -> list[str]:
    book = voices.Voices(MODE.voices_dir)
    return [line for line in _caller_lines() if not book.path(line).exists()]


@pytest.fixture(autouse=True)
def _voices_or_espeak() -> None:
    """Shipped WAV files make the suite independent of espeak-ng; outside CI a line with no
    file is spoken by espeak-ng, or the test is skipped saying which is missing."""
    missing = _missing_voices()
    if missing and not voices.espeak_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"caller lines with no WAV file: {missing}")
        pytest.skip(f"no WAV file and no espeak-ng for {missing}")


async def _play(
    name: str, bus: Bus, settings: SimulationSettings, chat_model: llm.LLM[Any] | None = None
) -> Report:
    path = AUDIO / f"{name}.toml"
    report = await run_scenario(
        scenarios.load(path), bus, settings, audio=MODE, chat_model=chat_model
    )
    print(render(report))  # shown when a test fails
    return report


def test_every_shipped_audio_line_has_its_wav_file_and_every_file_a_line() -> None:
    assert _missing_voices() == []
    files = {p.stem for p in MODE.voices_dir.glob("*.wav")}
    assert files == {voices.key(line) for line in _caller_lines()}


NAMED = {
    # Played by the tests below, which check more of them.
    "b1_talks_over_transfer_announcement",
    "c1_speaks_on_hold_then_hangs_up",
    "d1_manager_over_specialist_answer",
    "f1_manager_in_first_breath",
}
OTHERS = [p for p in scenarios.discover(AUDIO) if p.stem not in NAMED]


def test_every_audio_scenario_is_played_by_a_test() -> None:
    assert {p.stem for p in scenarios.discover(AUDIO)} == NAMED | {p.stem for p in OTHERS}
    assert {p.stem for p in scenarios.discover(AUDIO)} >= NAMED


@pytest.mark.parametrize("path", OTHERS, ids=lambda p: p.stem)
async def test_audio_scenarios_pass(
    path: Path, backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings
) -> None:
    report = await run_scenario(scenarios.load(path), bus, _audio(settings), audio=MODE)
    print(render(report))
    assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
    assert report.audio is not None
    # Every caller line that made a turn was heard through the recogniser, and every agent
    # reply in the history was played (whole, or cut).
    turns = [u.text for u in report.transcript if u.speaker == "caller" and u.heard]
    assert all(turns), turns
    assert all(r.pushed_s > 0 for r in report.audio.replies if r.said)


async def test_the_transfer_announcement_cannot_be_cut_and_hold_ignores_speech_but_not_a_hang_up(
    backends: Backends, demo_crm: RunningCrm, bus: Bus, settings: SimulationSettings
) -> None:
    settings = _audio(settings)
    over = await _play("b1_talks_over_transfer_announcement", bus, settings)
    assert over.ok, ([c for c in over.checks if not c.ok], over.errors)
    assert over.audio is not None
    [line] = [r for r in over.audio.replies if r.said.startswith(TRANSFER_LINE)]
    assert line.talked_over_by == ["Okay, I'll wait."]
    assert not line.interrupted
    assert line.played_s == line.pushed_s  # played to the last sample
    said = over.audio.caller[-1]
    # The hold begins before the announcement: the input is already off, so nothing of
    # what the caller said reached the session, let alone the recogniser.
    assert said.kind == "on_hold"
    assert said.delivered_s == 0
    assert not said.transcribed
    kinds = [e.kind for e in over.events]
    assert kinds.index("escalation.decided") < kinds.index("transfer.connected")
    assert over.outcome == "transferred"

    on_hold = await _play("c1_speaks_on_hold_then_hangs_up", bus, settings)
    assert on_hold.ok, ([c for c in on_hold.checks if not c.ok], on_hold.errors)
    assert on_hold.audio is not None
    [hello] = [c for c in on_hold.audio.caller if c.kind == "on_hold"]
    assert hello.delivered_s == 0  # the input was off: nothing of it reached the session
    assert not hello.transcribed
    kinds = [e.kind for e in on_hold.events]
    # Speaking did not stop the transfer (it went on to ringing); hanging up did.
    assert kinds.index("transfer.dialing") < kinds.index("transfer.ringing")
    assert kinds.index("transfer.ringing") < kinds.index("transfer.cancelled")
    cancelled = next(e for e in on_hold.events if e.kind == "transfer.cancelled")
    assert cancelled.data["reason"] == "caller_hung_up"
    assert on_hold.outcome == "abandoned"


async def test_an_interrupted_reply_is_cut_from_the_history_the_model_sees_next(
    backends: Backends,
    demo_crm: RunningCrm,
    bus: Bus,
    settings: SimulationSettings,
    openai_server: OpenAIServer,
) -> None:
    openai_server.policy = rules_policy()
    settings = _audio(settings, brain="openai", llm_retries=0, llm_attempt_timeout_s=5.0)
    chat_model = providers.language_model(settings, openai_server.env())
    report = await _play("d1_manager_over_specialist_answer", bus, settings, chat_model=chat_model)
    assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
    assert report.audio is not None
    # Billing's answer, cut by the request for a manager (a later reply may be cut too: the
    # caller's next turn can come while the manager is still being brought in).
    cut = next(r for r in report.audio.replies if r.interrupted)
    assert cut.agent == "billing"
    assert cut.full is not None
    assert cut.full.startswith(cut.said)
    assert len(cut.said) < len(cut.full)
    assert cut.played_s < cut.pushed_s
    unplayed = cut.full[len(cut.said) :].strip()
    # Every model request after the cut shows the reply as played, never the rest of it.
    later = [
        r
        for r in openai_server.chat_requests
        if any(m.role == "assistant" and m.text.startswith(cut.said) for m in r.messages)
    ]
    assert later, "no model request saw the interrupted reply"
    for request in later:
        texts = [m.text for m in request.messages if m.role == "assistant"]
        assert cut.said in texts
        assert not any(unplayed in text for text in texts), texts


@pytest.mark.parametrize(("warmup_s", "heard"), [(0.0, True), (3.0, False)])
async def test_echo_cancellation_warm_up_decides_whether_a_first_breath_request_is_heard(
    warmup_s: float,
    heard: bool,
    backends: Backends,
    demo_crm: RunningCrm,
    bus: Bus,
    settings: SimulationSettings,
) -> None:
    """With LiveKit's default 3 s warm-up, words said over the first seconds of the greeting
    are replaced by silence: the caller's request for a manager is never heard."""
    report = await _play("f1_manager_in_first_breath", bus, _audio(settings, aec_warmup_s=warmup_s))
    if heard:
        assert report.ok, ([c for c in report.checks if not c.ok], report.errors)
    assert report.audio is not None
    first = report.audio.caller[0]
    assert first.text.startswith("I want to speak to a manager")
    assert first.delivered_s > 0  # the microphone was on either way
    assert first.transcribed is heard
    greeting = report.audio.replies[0]
    assert greeting.interrupted is heard
    assert ("manager" in report.agents) is heard


async def test_the_command_line_speaks_a_scenario_with_audio(
    backends: Backends, demo_crm: RunningCrm, nats_server: NatsServer
) -> None:
    env = {**os.environ, "SB_NATS_URL": nats_server.url, "SB_TURN_DETECTION": "vad"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.simulation",
        "run-scenario",
        str(AUDIO / "e1_backchannel_during_answer.toml"),
        "--audio",
        "--json",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["audio"]["speed"] == 4.0
    resumed = [r for r in report["audio"]["replies"] if r.get("resumed")]
    assert [r["agent"] for r in resumed] == ["triage"]
    assert [c["kind"] for c in report["audio"]["caller"]] == ["turn", "backchannel", "turn"]
