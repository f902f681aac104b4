"""The recording gate: recording starts only on a granted consent receipt, stops on revocation.

The gate is the single place that turns recording on. It acts on the ledger's
``ConsentRecorded`` event (the receipt), never on the caller's words alone, so there is
always a ledger entry behind a recording. Stopping is the opposite: a caller saying "stop
recording" stops it at once, before the ledger confirms, because stopping early is never
a compliance problem. Once revoked, recording stays off for the rest of the call.

Production records with LiveKit Egress (see ``egress.py``); text mode uses
:class:`TimelineRecorder`, which records nothing and only keeps the timeline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from livekit.agents import AgentSession
from livekit.agents.voice.agent_session import RecordingOptions

from switchboard.contracts.call import RecordingStarted, RecordingStopped, RecordingStopReason
from switchboard.contracts.consent import ConsentDecision, ConsentRecorded, ConsentRevoked
from switchboard.voice.clients.events import EventSink

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """Starts and stops the actual recording of one call."""

    async def start(self, call_id: str) -> str | None:
        """Start recording; returns the recording (egress) id, if the backend has one."""
        ...

    async def stop(self, recording_id: str | None) -> None: ...


class TimelineRecorder:
    """Text mode: nothing is recorded; the gate's timeline is the whole output."""

    async def start(self, call_id: str) -> str | None:
        log.info("Recording started (text mode: timeline only).", extra={"call_id": call_id})
        return None

    async def stop(self, recording_id: str | None) -> None:
        log.info("Recording stopped (text mode: timeline only).")


TimelineAction = Literal["started", "stopped", "kept_off", "failed", "handed_over"]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One change (or deliberate non-change) of the recording state."""

    at_s: float
    """Seconds since the gate was created (the start of the call)."""
    action: TimelineAction
    detail: str
    consent_sequence: int | None = None
    recording_id: str | None = None


class RecordingGate:
    """Owns the recording state of one call."""

    def __init__(
        self,
        call_id: str,
        recorder: Recorder,
        events: EventSink,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._call_id = call_id
        self._recorder = recorder
        self._events = events
        self.on_change = on_change
        self._lock = asyncio.Lock()
        self._t0 = time.monotonic()
        self._recording_id: str | None = None
        self.recording = False
        self.revoked = False
        self.timeline: list[TimelineEntry] = []

    async def apply(self, event: ConsentRecorded | ConsentRevoked | None) -> None:
        """Act on the ledger's answer to a consent decision (``None``: no receipt in time)."""
        async with self._lock:
            if event is None:
                self._note("kept_off", "no consent receipt in time")
            elif event.call_id != self._call_id:
                log.error("Ignored a consent event of another call.")
            elif isinstance(event, ConsentRevoked) or event.decision is ConsentDecision.REVOKED:
                await self._revoke("consent revoked (ledger receipt)", event.receipt.sequence)
            elif event.decision is not ConsentDecision.GRANTED:
                self._note("kept_off", f"consent {event.decision}", event.receipt.sequence)
            elif self.revoked:
                self._note("kept_off", "consent was revoked earlier in this call")
            elif not self.recording:
                await self._start(event.receipt.sequence)

    async def revoke_now(self) -> None:
        """The caller withdrew consent: stop at once, before the ledger confirms."""
        async with self._lock:
            await self._revoke("caller withdrew consent", None)

    async def close(self, *, hand_over: bool = False) -> bool:
        """The call is over for the worker; whether recording goes on without it.

        After a transfer (``hand_over``) a recording that consent allows keeps going: the
        caller goes on talking with the person, who heard the consent state in the
        briefing, and Egress ends when the caller's room is deleted. Otherwise it stops.
        """
        async with self._lock:
            if hand_over and self.recording:
                self._note(
                    "handed_over",
                    "the caller and the person go on, recorded with consent, until the room "
                    "is deleted",
                    recording_id=self._recording_id,
                )
                return True
            await self._stop(RecordingStopReason.CALL_ENDED, "call ended", None)
            return False

    async def _start(self, sequence: int) -> None:
        try:
            self._recording_id = await self._recorder.start(self._call_id)
        except Exception as exc:
            log.error(
                "Recording could not start.",
                extra={"call_id": self._call_id, "error": type(exc).__name__},
            )
            self._note("failed", "recorder failed to start", sequence)
            return
        self.recording = True
        self._note("started", "consent granted (ledger receipt)", sequence, self._recording_id)
        self._changed()
        await self._events.publish(
            RecordingStarted(
                call_id=self._call_id, consent_sequence=sequence, egress_id=self._recording_id
            )
        )

    async def _revoke(self, detail: str, sequence: int | None) -> None:
        already = self.revoked
        self.revoked = True
        if self.recording:
            await self._stop(RecordingStopReason.CONSENT_REVOKED, detail, sequence)
        elif not already:
            self._note("kept_off", detail, sequence)

    async def _stop(self, reason: RecordingStopReason, detail: str, sequence: int | None) -> None:
        if not self.recording:
            return
        recording_id = self._recording_id
        try:
            await self._recorder.stop(recording_id)
        except Exception as exc:
            # Auditors must see that a stop was attempted and failed.
            log.error(
                "Recording could not be stopped.",
                extra={"call_id": self._call_id, "error": type(exc).__name__},
            )
            reason = RecordingStopReason.ERROR
        self.recording = False
        self._recording_id = None
        self._note("stopped", detail, sequence, recording_id)
        self._changed()
        await self._events.publish(
            RecordingStopped(call_id=self._call_id, reason=reason, egress_id=recording_id)
        )

    def _note(
        self,
        action: TimelineAction,
        detail: str,
        sequence: int | None = None,
        recording_id: str | None = None,
    ) -> None:
        self.timeline.append(
            TimelineEntry(
                at_s=round(time.monotonic() - self._t0, 3),
                action=action,
                detail=detail,
                consent_sequence=sequence,
                recording_id=recording_id,
            )
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.recording)


def session_record_options(consented: bool) -> RecordingOptions:
    """What the AgentSession ``record`` option allows for a consent state.

    Audio is never recorded by the session itself (Egress does that behind the gate);
    the transcript is uploaded only with consent. Traces and logs carry transcripts too,
    so they follow the same decision.
    """
    return RecordingOptions(
        audio=False, transcript=consented, traces=consented, logs=consented, redaction=True
    )


class SessionRecordSwitch:
    """Keeps an AgentSession's recording options in step with the gate.

    The session reads ``options.recording_options`` when it uploads its report at the end
    of the job, so updating that dict makes the upload follow consent as it was when the
    call ended (granted and not revoked). ``AgentSession.start`` replaces the dict with a
    new one, so the switch looks it up on the session each time, never keeps a reference.
    """

    def __init__(self, session: AgentSession[Any]) -> None:
        self._session = session

    def __call__(self, recording: bool) -> None:
        self._session.options.recording_options.update(session_record_options(recording))
