"""The systems one call reaches: the other services over NATS, the recording gate, the
customer's back office, the consult rooms and hold audio of a transfer, and the voices it
speaks with.

Agents act through these and nothing else, so a test or the simulation swaps a port
(an in-memory event sink, a scripted back office) without touching the call graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit.agents import tts
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from switchboard.voice.backoffice import BackOffice
from switchboard.voice.clients.consent import ConsentClient
from switchboard.voice.clients.events import CallEventSink
from switchboard.voice.clients.router import RouterClient
from switchboard.voice.clients.transfer import TransferClient
from switchboard.voice.recording import RecordingGate
from switchboard.voice.transfer.consult import ConsultRooms
from switchboard.voice.transfer.hold import HoldAudio


@dataclass(frozen=True, slots=True)
class Ports:
    """The clients one call uses."""

    consent: ConsentClient
    router: RouterClient
    transfer: TransferClient
    events: CallEventSink
    gate: RecordingGate
    back_office: BackOffice
    consult: ConsultRooms
    """Where warm transfers brief the human (production: LiveKit consult rooms)."""
    hold_audio: HoldAudio


@dataclass(frozen=True, slots=True)
class Voices:
    """TTS per role: the manager speaks with its own voice. ``NOT_GIVEN`` in text mode."""

    manager: NotGivenOr[tts.TTS[Any]] = NOT_GIVEN
