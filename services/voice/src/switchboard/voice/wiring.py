"""Wiring one call to the bus: the NATS connection, the clients, the gate and the session.

Shared by the production worker and the text-mode runner, so both run the same graph
over the same clients; only the recorder, the models and the room differ.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession, llm
from livekit.agents.voice.events import FunctionToolsExecutedEvent
from livekit.agents.voice.turn import TurnHandlingOptions
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from switchboard.contracts import streams
from switchboard.contracts.call import CallStarted
from switchboard.contracts.consent import ConsentPolicyQuery
from switchboard.contracts.subjects import Owner
from switchboard.runtime.bus import EventPublisher, connect, ensure_stream
from switchboard.voice.brain import RulesBrain
from switchboard.voice.call import Call, CallInfo, Services, Voices
from switchboard.voice.clients.consent import ConsentClient
from switchboard.voice.clients.events import CallEvents, CallEventSink
from switchboard.voice.clients.router import RouterClient, queue_from_settings
from switchboard.voice.clients.transfer import TransferClient
from switchboard.voice.recording import Recorder, RecordingGate
from switchboard.voice.settings import VoiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bus:
    """One NATS connection per worker process, shared by all its calls."""

    nc: NATS
    js: JetStreamContext
    source: str
    """CloudEvents ``source`` of the events this process publishes."""
    events: EventPublisher
    """Publishes every call's events and confirms they are stored (see ``clients/events.py``)."""

    async def close(self) -> None:
        await self.events.close()
        await self.nc.drain()


async def open_bus(settings: VoiceSettings, name: str = Owner.VOICE.value) -> Bus:
    """Connect and make sure the streams the worker publishes to exist."""
    nc = await connect(settings, name)
    js = nc.jetstream()
    for spec in streams.ALL_STREAMS:
        await ensure_stream(js, spec, settings.stream_replicas)
    source = settings.instance or f"{name}@{socket.gethostname()}"
    # A JetStream context of its own: the publisher's async acks are its alone.
    events = EventPublisher(nc.jetstream(), source=source)
    return Bus(nc=nc, js=js, source=source, events=events)


def new_call(
    bus: Bus,
    settings: VoiceSettings,
    info: CallInfo,
    recorder: Recorder,
    voices: Voices | None = None,
    events: CallEventSink | None = None,
) -> Call:
    """A call with its clients and recording gate, not started yet.

    ``events`` replaces the call's JetStream publisher (the voice benchmark's no-op
    baseline); production always publishes.
    """
    if events is None:
        events = CallEvents(bus.events)
    services = Services(
        consent=ConsentClient(
            bus.nc,
            bus.js,
            policy_timeout=settings.consent_policy_timeout_s,
            receipt_timeout=settings.consent_receipt_timeout_s,
        ),
        router=RouterClient(
            bus.nc,
            timeout=settings.router_timeout_s,
            fallback_queue=queue_from_settings(
                settings.fallback_queue_id,
                settings.fallback_queue_address,
                settings.fallback_queue_trunk,
            ),
        ),
        transfer=TransferClient(bus.nc, timeout=settings.transfer_place_timeout_s),
        events=events,
        gate=RecordingGate(info.call_id, recorder, events),
    )
    call = Call(info=info, services=services, settings=settings, voices=voices or Voices())
    call.failures.limit = settings.repeated_failure_limit
    return call


async def begin(call: Call) -> None:
    """Announce the call and fetch its consent policy (the strictest one if the ledger fails)."""
    info = call.info
    await call.services.events.publish(
        CallStarted(
            call_id=info.call_id,
            room=info.room,
            caller_number=info.caller_number,
            trunk=info.trunk,
            language=info.language,
        )
    )
    call.policy = await call.services.consent.policy(
        ConsentPolicyQuery(
            call_id=info.call_id,
            caller_number=info.caller_number,
            trunk=info.trunk,
            language=info.language,
        )
    )
    log.info(
        "Call started.",
        extra={
            "call_id": info.call_id,
            "consent_mode": str(call.policy.mode),
            "policy_fallback": call.policy.fallback,
        },
    )


def count_tool_errors(session: AgentSession[Any], call: Call) -> None:
    """Failed tool calls count towards the repeated-failure trigger."""

    def on_tools(ev: FunctionToolsExecutedEvent) -> None:
        for output in ev.function_call_outputs:
            if output.is_error:
                call.failures.observe_tool_error()

    session.on("function_tools_executed", on_tools)


def text_session(call: Call, brain: llm.LLM[Any] | None = None) -> AgentSession[Call]:
    """An AgentSession with no room, audio or turn detector: text in, text out."""
    session = AgentSession[Call](
        llm=brain or RulesBrain(),
        vad=None,
        turn_handling=TurnHandlingOptions(turn_detection=None),
        userdata=call,
    )
    count_tool_errors(session, call)
    return session
