"""Wiring one call: the NATS connection, the ports, the gate and the agent session.

Shared by the production worker and the simulation's text-mode runner, so both run the
same graph over the same clients (the back office too: the CRM adapter over NATS); only the
recorder, the models and the room differ.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, llm, stt, tts, vad
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice.events import FunctionToolsExecutedEvent
from livekit.agents.voice.turn import TurnHandlingOptions
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from switchboard.contracts import streams
from switchboard.contracts.call import CallStarted
from switchboard.contracts.consent import ConsentPolicyQuery
from switchboard.contracts.envelope import source_uri
from switchboard.contracts.subjects import Owner
from switchboard.runtime.bus import EventPublisher, StreamMissing, connect, require_stream
from switchboard.voice import turns
from switchboard.voice.backoffice import BackOffice
from switchboard.voice.call import Call
from switchboard.voice.clients.backoffice import NatsBackOffice
from switchboard.voice.clients.consent import ConsentClient
from switchboard.voice.clients.events import CallEvents, CallEventSink
from switchboard.voice.clients.outbox import EventOutbox
from switchboard.voice.clients.router import RouterClient, queue_from_settings
from switchboard.voice.clients.sealing import CallerKeys, SealingEvents
from switchboard.voice.clients.transfer import TransferClient
from switchboard.voice.ports import Ports, Voices
from switchboard.voice.recording import Recorder, RecordingGate
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.state import CallInfo, CallState
from switchboard.voice.transfer.consult import ConsultRooms
from switchboard.voice.transfer.hold import HoldAudio, NoHoldAudio

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
    outbox: EventOutbox
    """Keeps every call's events until stored, on disk with ``SB_EVENT_OUTBOX_DIR``."""

    async def close(self) -> None:
        await self.outbox.close()
        await self.events.close()
        await self.nc.drain()


async def open_bus(settings: VoiceSettings, name: str = Owner.VOICE.value) -> Bus:
    """Connect and check that the streams the worker publishes to exist (``StreamMissing``
    when the provisioning step has not made them)."""
    nc = await connect(settings, name)
    js = nc.jetstream()
    try:
        for spec in (streams.EVENTS, streams.CONSENT_COMMANDS):
            await require_stream(js, spec)
    except StreamMissing:
        await nc.close()
        raise
    instance = settings.instance or f"{name}@{socket.gethostname()}"
    # A JetStream context of its own: the publisher's async acks are its alone.
    source = source_uri(Owner.VOICE)
    # Every event this worker publishes has the worker as its source, a routing decision it
    # made itself included: a call's numbered events are one producer's, one source's.
    events = EventPublisher(nc.jetstream(), instance=instance, source=source)
    outbox = EventOutbox(
        events, Path(settings.event_outbox_dir) if settings.event_outbox_dir else None
    )
    outbox.open()
    return Bus(nc=nc, js=js, source=source, events=events, outbox=outbox)


def new_call(
    bus: Bus,
    settings: VoiceSettings,
    info: CallInfo,
    recorder: Recorder,
    back_office: BackOffice | None = None,
    voices: Voices | None = None,
    events: CallEventSink | None = None,
    *,
    consult: ConsultRooms,
    hold_audio: HoldAudio | None = None,
) -> Call:
    """A call with its ports and recording gate, not started yet.

    The back office is the CRM adapter over NATS unless a test passes another.
    ``consult`` opens the consult rooms of warm transfers (LiveKit rooms in production,
    scripted humans in the simulation); ``hold_audio`` is what the caller hears on hold
    (none by default, as in text mode). ``events`` replaces the call's JetStream publisher
    (the voice benchmark's no-op baseline); production always publishes.
    """
    if events is None:
        events = CallEvents(bus.outbox)
    # Whatever the sink, personal fields go out sealed or not at all (clients/sealing.py).
    events = SealingEvents(
        events,
        CallerKeys(bus.nc, timeout=settings.consent_policy_timeout_s),
        info.call_id,
        info.caller_number,
    )
    ports = Ports(
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
        back_office=back_office or NatsBackOffice(bus.nc, timeout=settings.backoffice_timeout_s),
        consult=consult,
        hold_audio=hold_audio or NoHoldAudio(),
    )
    state = CallState(info=info)
    state.failures.limit = settings.repeated_failure_limit
    return Call(state=state, ports=ports, settings=settings, voices=voices or Voices())


async def begin(call: Call) -> None:
    """Announce the call and fetch its consent policy (the strictest one if the ledger fails)."""
    info = call.state.info
    # Asked while CallStarted is sealed (the caller's key is another ledger request): a
    # ledger that does not answer then costs one timeout at the start, not two.
    asking = asyncio.ensure_future(
        call.ports.consent.policy(
            ConsentPolicyQuery(
                call_id=info.call_id,
                caller_number=info.caller_number,
                trunk=info.trunk,
                language=info.language,
            )
        )
    )
    try:
        await call.ports.events.publish(
            CallStarted(
                call_id=info.call_id,
                room=info.room,
                caller_number=info.caller_number,
                trunk=info.trunk,
                language=info.language,
                started_at=call.state.started_on,
            )
        )
    finally:
        policy = call.state.policy = await asking
    log.info(
        "Call started.",
        extra={
            "call_id": info.call_id,
            "consent_mode": str(policy.mode),
            "policy_fallback": policy.fallback,
        },
    )


def new_session(
    call: Call,
    chat_model: llm.LLM[Any],
    *,
    recognizer: NotGivenOr[stt.STT[Any]] = NOT_GIVEN,
    voice: NotGivenOr[tts.TTS[Any]] = NOT_GIVEN,
    voice_activity: vad.VAD | None = None,
) -> AgentSession[Call]:
    """The call's AgentSession. Without voice activity detection (text mode: no room, no
    audio) there is no turn detector either; each ``session.run`` is one caller turn. With
    it, turn-taking follows the settings (``turns.py``).
    Failed tool calls count towards the repeated-failure trigger."""
    if voice_activity is None:
        session = AgentSession[Call](
            llm=chat_model,
            stt=recognizer,
            tts=voice,
            vad=None,
            turn_handling=TurnHandlingOptions(turn_detection=None),
            userdata=call,
        )
    else:
        # Turn-taking and interruptions come from the settings, in one place (``turns.py``).
        session = AgentSession[Call](
            llm=chat_model,
            stt=recognizer,
            tts=voice,
            vad=voice_activity,
            turn_handling=turns.turn_handling(call.settings),
            aec_warmup_duration=turns.aec_warmup(call.settings),
            userdata=call,
        )
    failures = call.state.failures

    def on_tools(ev: FunctionToolsExecutedEvent) -> None:
        for output in ev.function_call_outputs:
            if output.is_error:
                failures.observe_tool_error()

    session.on("function_tools_executed", on_tools)
    return session
