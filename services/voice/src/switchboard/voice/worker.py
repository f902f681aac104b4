"""The production LiveKit worker: one job per call, the same graph as the text runner.

``python -m switchboard.voice start`` registers with LiveKit (``LIVEKIT_URL``,
``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``) under ``SB_AGENT_NAME`` and handles calls
dispatched to it. SIGTERM drains: calls in progress finish first (``drain_timeout``).
After a transfer the agent leaves the caller's room (the caller and the person go on;
the sip-bridge deletes the room when one of them hangs up).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, cli
from livekit.plugins import silero
from opentelemetry import context as otel_context
from opentelemetry import trace

from switchboard.contracts.base import E164_PATTERN
from switchboard.contracts.call import CallOutcome
from switchboard.contracts.subjects import Owner
from switchboard.runtime import telemetry
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.settings import load
from switchboard.voice import collector, logfilter, providers
from switchboard.voice.agents.roster import Roster
from switchboard.voice.egress import EgressRecorder
from switchboard.voice.load import WorkerLoad
from switchboard.voice.ports import Voices
from switchboard.voice.recording import SessionRecordSwitch, session_record_options
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.state import CallInfo
from switchboard.voice.tracing import call_span
from switchboard.voice.transfer.livekit_room import LiveKitConsultRooms, hold_audio
from switchboard.voice.wiring import Bus, begin, new_call, new_session, open_bus

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 3600
LOAD_THRESHOLD = 0.7
_bus: Bus | None = None
_bus_lock = asyncio.Lock()


def prewarm(proc: JobProcess) -> None:
    """Load the VAD and install tracing once per job process, before jobs arrive."""
    logfilter.install()
    telemetry.setup_tracing(Owner.VOICE.value, load(VoiceSettings).trace_exporter)
    proc.userdata["vad"] = silero.VAD.load()
    collector.prepare_for_calls()


async def process_bus(settings: VoiceSettings) -> Bus:
    """One NATS connection per job process, shared by its calls."""
    global _bus
    async with _bus_lock:
        if _bus is None:
            _bus = await open_bus(settings)
        return _bus


def call_info(
    job_id: str, room: str, caller_identity: str, attributes: Mapping[str, str]
) -> CallInfo:
    """Who is calling: SIP participants carry their number and trunk as attributes.

    The call id must be a safe subject token, so the job id is reduced to its alphabet.
    """
    call_id = re.sub(r"[^A-Za-z0-9_-]", "-", job_id)[:64] or uuid.uuid4().hex
    return CallInfo(
        call_id=call_id,
        room=room,
        caller_identity=caller_identity,
        caller_number=_e164(attributes.get("sip.phoneNumber")),
        trunk=attributes.get("sip.trunkID") or None,
    )


_E164 = re.compile(E164_PATTERN)


def _e164(number: str | None) -> str | None:
    """The carrier's caller number when it is E.164, the only form the contracts carry;
    anything else (``anonymous``, a national form) is an unknown number, not a guess."""
    return number if number and _E164.match(number) else None


async def handle_call(ctx: JobContext, settings: VoiceSettings) -> None:
    await ctx.connect()
    caller = await ctx.wait_for_participant()
    info = call_info(ctx.job.id, ctx.room.name, caller.identity, caller.attributes)
    span = call_span(info)
    # Current for the rest of this task and inherited by every task the call starts; it
    # ends in ``finish`` when the call is torn down.
    otel_context.attach(trace.set_span_in_context(span))
    models = providers.build(settings, ctx.proc.userdata["vad"])
    recorder = EgressRecorder(
        ctx.api, room=info.room, filepath=settings.egress_filepath.format(call_id=info.call_id)
    )
    call = new_call(
        await process_bus(settings),
        settings,
        info,
        recorder,
        voices=Voices(manager=models.manager_voice),
        consult=LiveKitConsultRooms(models),
        hold_audio=hold_audio(ctx.room, settings.hold_audio),
    )
    session = new_session(
        call,
        models.chat_model,
        recognizer=models.recognizer,
        voice=models.voice,
        voice_activity=models.voice_activity,
    )
    call.ports.gate.on_change = SessionRecordSwitch(session)
    call.on_end = lambda outcome: _leave(ctx, session, outcome)

    def on_left(participant: rtc.RemoteParticipant) -> None:
        # A caller on hold who hangs up cancels the transfer (every leg is hung up).
        if participant.identity == info.caller_identity:
            call.caller_left()

    ctx.room.on("participant_disconnected", on_left)

    async def finish() -> None:
        try:
            await call.finish()
        finally:
            span.end()
            # Job processes may exit right after a call: export its spans now.
            await asyncio.to_thread(telemetry.flush_tracing)

    ctx.add_shutdown_callback(finish)
    await begin(call)
    await session.start(Roster(call).triage(), room=ctx.room, record=session_record_options(False))


def _leave(ctx: JobContext, session: AgentSession[Any], outcome: CallOutcome) -> None:
    # Drain: the last sentence (goodbye) is still played.
    session.shutdown(drain=True)
    if outcome is CallOutcome.TRANSFERRED:
        # The caller is with a person now: the agent leaves the room once it is quiet.
        session.on("close", lambda _event: ctx.shutdown(reason="transferred to a person"))


async def entrypoint(ctx: JobContext) -> None:
    """One call, in a job process. Module-level: the worker pickles the entrypoint to hand
    it to its job processes (a closure cannot be pickled, and no job would ever start)."""
    await handle_call(ctx, load(VoiceSettings))


def build_server(settings: VoiceSettings) -> AgentServer:
    server = AgentServer(
        setup_fnc=prewarm,
        drain_timeout=DRAIN_TIMEOUT_S,
        load_threshold=LOAD_THRESHOLD,
        load_fnc=WorkerLoad(settings.max_calls_per_worker),
        prometheus_port=settings.metrics_port or None,
    )
    server.rtc_session(agent_name=settings.agent_name)(entrypoint)
    return server


def main(argv: list[str]) -> int:
    """Run LiveKit's worker CLI (``start``, ``dev``...) with our server."""
    settings = load(VoiceSettings)
    configure_logging(Owner.VOICE.value, settings.log_level)
    logfilter.install()
    sys.argv = [sys.argv[0], *argv]
    cli.run_app(build_server(settings))
    return 0
