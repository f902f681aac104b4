"""Fixtures for the voice worker's tests: in-test backends on a real nats-server and a
text-mode call harness."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession, llm

from switchboard.devstack.natsserver import NatsServer
from switchboard.simulation.consult import ScriptedConsultRooms
from switchboard.simulation.runner import ready_for_input
from switchboard.simulation.scenario import Human
from switchboard.simulation.transcript import Transcript
from switchboard.testing import fake_backends
from switchboard.voice.agents.roster import Roster
from switchboard.voice.backoffice import BackOffice
from switchboard.voice.brain import RulesBrain
from switchboard.voice.call import Call
from switchboard.voice.recording import TimelineRecorder
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.state import CallInfo
from switchboard.voice.wiring import Bus, begin, new_call, new_session, open_bus

REPO = Path(__file__).resolve().parents[3]
READY_TIMEOUT_S = 10.0


@pytest.fixture(autouse=True)
async def _stop_fakes() -> AsyncIterator[None]:
    """Fakes started inside a test are stopped before its NATS connection closes."""
    yield
    await fake_backends.stop_all()


@pytest.fixture
def settings(nats_server: NatsServer) -> VoiceSettings:
    return VoiceSettings(
        nats_url=nats_server.url,
        consent_policy_timeout_s=0.5,
        consent_receipt_timeout_s=1.0,
        router_timeout_s=0.5,
        transfer_place_timeout_s=0.5,
        transfer_answer_timeout_s=5.0,
    )


@pytest.fixture
async def bus(settings: VoiceSettings) -> AsyncIterator[Bus]:
    opened = await open_bus(settings)
    try:
        yield opened
    finally:
        await opened.close()


@dataclass
class Harness:
    call: Call
    session: AgentSession[Call]
    transcript: Transcript
    consult: ScriptedConsultRooms

    def said(self) -> list[str]:
        """What the agents said to the caller."""
        return [
            line.text
            for line in self.transcript.lines
            if line.speaker != "caller" and line.side == "call"
        ]

    def briefed(self) -> list[str]:
        """What the briefing agent said to the humans who answered."""
        return [line.text for line in self.transcript.lines if line.speaker == "briefing"]


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_call(bus: Bus, settings: VoiceSettings) -> AsyncIterator[HarnessFactory]:
    """Start a text-mode call on the real graph; the greeting run is awaited."""
    sessions: list[Harness] = []

    async def factory(
        *,
        caller_number: str | None = "+14155550123",
        brain: llm.LLM[Any] | None = None,
        back_office: BackOffice | None = None,
        configured: VoiceSettings | None = None,
        humans: Sequence[Human] = (),
    ) -> Harness:
        """``back_office`` defaults to the production one: the CRM adapter over NATS (start
        the ``demo_crm`` fixture for one that answers); ``configured`` replaces the test's
        settings for this call (other limits, say); ``humans`` answer its warm transfers."""
        call_id = f"t-{uuid.uuid4().hex[:10]}"
        info = CallInfo(
            call_id=call_id,
            room=f"room-{call_id}",
            caller_identity=f"caller-{call_id}",
            caller_number=caller_number,
            trunk="main",
        )
        model = brain or RulesBrain()
        transcript = Transcript()
        consult = ScriptedConsultRooms(model, transcript, humans)
        call = new_call(
            bus, configured or settings, info, TimelineRecorder(), back_office, consult=consult
        )
        await begin(call)
        session = new_session(call, model)
        transcript.attach(session)
        first = await session.start(Roster(call).triage(), capture_run=True, record=False)
        await first
        # The consent task may still be handing back to triage (notify mode completes it
        # in on_enter); a turn sent before that would reach the finished task.
        loop = asyncio.get_running_loop()
        await ready_for_input(session, loop.time() + READY_TIMEOUT_S)
        harness = Harness(call, session, transcript, consult)
        sessions.append(harness)
        return harness

    yield factory
    for h in sessions:
        await h.call.finish()
        await h.session.aclose()
