"""Fixtures for the voice worker's tests: in-test backends on a real nats-server and a
text-mode call harness."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession, llm
from nats.aio.client import Client as NATS

from switchboard.devstack.natsserver import NatsServer
from switchboard.voice.agents.roster import Roster
from switchboard.voice.call import Call, CallInfo
from switchboard.voice.recording import TimelineRecorder
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.transcript import Transcript
from switchboard.voice.wiring import Bus, begin, new_call, open_bus, text_session

sys.path.insert(0, str(Path(__file__).parent))

from voice_fakes import RUNNING, Backends, start_backends

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
async def _stop_fakes() -> AsyncIterator[None]:
    """Fakes started inside a test are stopped before its NATS connection closes."""
    yield
    while RUNNING:
        await RUNNING.pop().stop()


@pytest.fixture
def settings(nats_server: NatsServer) -> VoiceSettings:
    return VoiceSettings(
        nats_url=nats_server.url,
        consent_policy_timeout_s=0.5,
        consent_receipt_timeout_s=1.0,
        router_timeout_s=0.5,
        transfer_place_timeout_s=0.5,
        transfer_answer_timeout_s=5.0,
        transfer_connect_grace_s=0.3,
    )


@pytest.fixture
async def bus(settings: VoiceSettings) -> AsyncIterator[Bus]:
    opened = await open_bus(settings)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def backends(nc: NATS) -> AsyncIterator[Backends]:
    started = await start_backends(nc)
    try:
        yield started
    finally:
        await started.stop()


@dataclass
class Harness:
    call: Call
    session: AgentSession[Call]
    transcript: Transcript

    def said(self) -> list[str]:
        return [line.text for line in self.transcript.lines if line.speaker != "caller"]


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_call(bus: Bus, settings: VoiceSettings) -> AsyncIterator[HarnessFactory]:
    """Start a text-mode call on the real graph; the greeting run is awaited."""
    sessions: list[Harness] = []

    async def factory(
        *, caller_number: str | None = "+14155550123", brain: llm.LLM[Any] | None = None
    ) -> Harness:
        call_id = f"t-{uuid.uuid4().hex[:10]}"
        info = CallInfo(
            call_id=call_id,
            room=f"room-{call_id}",
            caller_identity=f"caller-{call_id}",
            caller_number=caller_number,
            trunk="main",
        )
        call = new_call(bus, settings, info, TimelineRecorder())
        await begin(call)
        session = text_session(call, brain)
        transcript = Transcript()
        transcript.attach(session)
        first = await session.start(Roster(call).triage(), capture_run=True, record=False)
        await first
        harness = Harness(call, session, transcript)
        sessions.append(harness)
        return harness

    yield factory
    for h in sessions:
        await h.call.finish()
        await h.session.aclose()
