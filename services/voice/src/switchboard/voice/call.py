"""The state of one call, shared by every agent and task of its session (session userdata).

It holds who is calling, the consent state, what triage found, what was collected, how
often the AI failed, and the clients to reach the other services. Agents read and update
it; they never keep call facts of their own, so a handoff loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import tts
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from switchboard.contracts.call import CallEnded, CallOutcome
from switchboard.contracts.consent import ConsentDecision, ConsentPolicy, RecordConsent
from switchboard.voice.clients.consent import ConsentClient
from switchboard.voice.clients.events import CallEventSink
from switchboard.voice.clients.router import RouterClient
from switchboard.voice.clients.transfer import TransferClient
from switchboard.voice.recording import RecordingGate
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.triggers import EscalationAsk, FailureTracker

log = logging.getLogger(__name__)

MAX_TURNS_KEPT = 20


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who is calling and where; fixed for the whole call."""

    call_id: str
    room: str
    caller_identity: str
    caller_number: str | None = None
    trunk: str | None = None
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Services:
    """The clients one call uses."""

    consent: ConsentClient
    router: RouterClient
    transfer: TransferClient
    events: CallEventSink
    gate: RecordingGate


@dataclass(frozen=True, slots=True)
class Voices:
    """TTS per role: the manager speaks with its own voice. ``NOT_GIVEN`` in text mode."""

    manager: NotGivenOr[tts.TTS[Any]] = NOT_GIVEN


@dataclass
class Call:
    """Everything the agents of one call share."""

    info: CallInfo
    services: Services
    settings: VoiceSettings
    voices: Voices = field(default_factory=Voices)
    policy: ConsentPolicy | None = None
    consent: ConsentDecision | None = None
    consent_sequence: int | None = None
    intent: str | None = None
    collected: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    """Times the AI tried and could not resolve the caller's need (refused refunds...)."""
    failures: FailureTracker = field(default_factory=FailureTracker)
    pending_escalation: EscalationAsk | None = None
    """Set by a task that cannot escalate itself (consent, intake); its parent acts on it."""
    forced_escalation: EscalationAsk | None = None
    """Set by the screening when it forces an ``escalate`` call, so the tool knows the
    trigger and whether a person was asked for."""
    outcome: CallOutcome | None = None
    caller_turns: list[str] = field(default_factory=list)
    """What the caller said (the last ``MAX_TURNS_KEPT``), in memory only: for summaries
    and consent excerpts."""
    screened: set[str] = field(default_factory=set)
    """Ids of caller messages already screened for triggers (each is screened once)."""
    on_end: Callable[[CallOutcome], None] | None = None
    """Set by the runtime: how to leave the call (shut the session down in production)."""
    started_at: float = field(default_factory=time.monotonic)
    _background: set[asyncio.Task[Any]] = field(default_factory=set)
    _ended_event_sent: bool = False

    @property
    def call_id(self) -> str:
        return self.info.call_id

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    @property
    def last_caller_text(self) -> str:
        return self.caller_turns[-1] if self.caller_turns else ""

    def heard(self, text: str) -> None:
        """Keep a caller sentence for summaries; old ones are dropped (memory is bounded)."""
        self.caller_turns.append(text)
        del self.caller_turns[:-MAX_TURNS_KEPT]

    def take_forced_escalation(self) -> EscalationAsk | None:
        """The escalation the screening forced for this turn (consumed once)."""
        ask, self.forced_escalation = self.forced_escalation, None
        return ask

    def end(self, outcome: CallOutcome) -> None:
        """Mark the call over; the first outcome wins (a transfer beats a later goodbye)."""
        if self.outcome is not None:
            return
        self.outcome = outcome
        log.info("Call outcome decided.", extra={"call_id": self.call_id, "outcome": str(outcome)})
        if self.on_end is not None:
            self.on_end(outcome)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work that must not delay the conversation but must finish before the call
        is torn down (ledger writes)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout: float = 5.0) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    async def decide_consent(self, decision: ConsentDecision, excerpt: str | None) -> bool:
        """Record a consent decision in the ledger and let the gate act on the receipt.

        Returns whether a receipt came back.
        """
        policy = self.policy
        assert policy is not None, "the consent policy is fetched before the call starts"
        command = RecordConsent(
            call_id=self.call_id,
            decision=decision,
            jurisdiction=policy.jurisdiction,
            mode=policy.mode,
            notice_version=policy.notice_version,
            caller_number=self.info.caller_number,
            transcript_excerpt=excerpt or None,
            language=self.info.language,
        )
        if decision is not ConsentDecision.REVOKED:
            self.consent = decision
        receipt = await self.services.consent.record(command)
        if receipt is not None:
            self.consent_sequence = receipt.receipt.sequence
        await self.services.gate.apply(receipt)
        return receipt is not None

    async def revoke_consent(self, excerpt: str) -> None:
        """The caller withdrew consent: recording stops now; the ledger entry follows."""
        self.consent = ConsentDecision.REVOKED
        await self.services.gate.revoke_now()
        self.spawn(self.decide_consent(ConsentDecision.REVOKED, excerpt))

    async def finish(self) -> None:
        """Tear down: stop recording, flush ledger writes, publish ``CallEnded`` once and
        wait until the call's events are stored."""
        if self._ended_event_sent:
            return
        self._ended_event_sent = True
        if self.outcome is None:
            self.outcome = CallOutcome.ABANDONED
        await self.drain()
        await self.services.gate.close()
        await self.services.events.publish(
            CallEnded(
                call_id=self.call_id,
                outcome=self.outcome,
                duration_s=round(time.monotonic() - self.started_at, 3),
            )
        )
        await self.services.events.settle()
