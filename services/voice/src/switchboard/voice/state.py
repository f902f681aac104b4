"""The facts of one call: who is calling, what they consented to, what they need.

Plain data, no I/O: every agent and task of the call reads and updates the same
``CallState``, so a handoff loses nothing. The systems the call reaches are in
``ports.py``; how a call is put together and torn down is in ``call.py``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from switchboard.contracts.base import utcnow
from switchboard.contracts.call import CallOutcome
from switchboard.contracts.consent import ConsentDecision, ConsentPolicy
from switchboard.voice.triggers import FailureTracker

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


@dataclass
class CallState:
    """What is known about the call so far."""

    info: CallInfo
    policy: ConsentPolicy | None = None
    consent: ConsentDecision | None = None
    consent_sequence: int | None = None
    intent: str | None = None
    collected: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    """Times the AI tried and could not resolve the caller's need (refused refunds...)."""
    failures: FailureTracker = field(default_factory=FailureTracker)
    outcome: CallOutcome | None = None
    caller_turns: list[str] = field(default_factory=list)
    """What the caller said (the last ``MAX_TURNS_KEPT``), in memory only: for summaries
    and consent excerpts."""
    screened: set[str] = field(default_factory=set)
    """Ids of caller messages already screened for triggers (each is screened once)."""
    on_hold: bool = False
    """The caller is on hold for a transfer: nothing they say is acted on."""
    started_at: float = field(default_factory=time.monotonic)
    """For the call's duration (a monotonic clock)."""
    started_on: dt.datetime = field(default_factory=utcnow)
    """When the call started (wall clock): ``call.started`` and ``call.ended`` say it."""
    transfer_id: str | None = None
    """The last human transfer placed during the call, kept after it ended."""

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

    def decide_outcome(self, outcome: CallOutcome) -> bool:
        """Settle how the call ends; the first outcome wins (a transfer beats a later
        goodbye). True when this call settled it."""
        if self.outcome is not None:
            return False
        self.outcome = outcome
        log.info("Call outcome decided.", extra={"call_id": self.call_id, "outcome": str(outcome)})
        return True
