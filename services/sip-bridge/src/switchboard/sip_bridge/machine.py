"""The state machine of one human transfer, and the events each transition publishes.

requested → (queued) → dialing → (ringing) → answered → briefed → connected for a warm
transfer, where ``briefed`` is the human's acceptance after the briefing; a cold transfer
(SIP REFER) goes from answered straight to connected. ``queued`` is the wait for a dial
slot (calls-per-second or concurrency cap) before the first attempt. A failed attempt
moves on to the next destination (failover); when none is left the transfer fails for
good with ``all_destinations_failed``. ``cancel`` works from any state that is not
terminal. Every transition returns the contract event to publish together with a
deterministic event id, so republishing after a lost ack is de-duplicated by JetStream.

No I/O here: the transfer desk drives the machine and publishes what it returns.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from switchboard.contracts.base import Message
from switchboard.contracts.escalation import Destination
from switchboard.contracts.transfer import (
    FailureReason,
    TransferAnswered,
    TransferBriefed,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferMode,
    TransferQueued,
    TransferRinging,
)


class TransferState(enum.StrEnum):
    """Where a transfer is. ``requested`` also means "waiting to dial the next destination"."""

    REQUESTED = "requested"
    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    BRIEFED = "briefed"
    CONNECTED = "connected"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset(
    {TransferState.CONNECTED, TransferState.FAILED, TransferState.CANCELLED}
)
IN_ATTEMPT_STATES = frozenset(
    {TransferState.DIALING, TransferState.RINGING, TransferState.ANSWERED, TransferState.BRIEFED}
)

NO_FAILOVER_REASONS = frozenset({FailureReason.CALLER_HUNG_UP})
"""Failures that another destination cannot fix: there is nobody left to connect."""


class IllegalTransition(RuntimeError):
    """A transition that the current state does not allow (a bug in the caller)."""

    def __init__(self, state: TransferState, action: str) -> None:
        super().__init__(f"Cannot {action} a transfer that is {state.value}.")
        self.state = state
        self.action = action


@dataclass(frozen=True, slots=True)
class Emitted:
    """An event to publish, with the id that makes its publication idempotent."""

    event: Message
    event_id: str


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    """Why an attempt failed; the SIP status when the far end sent one."""

    reason: FailureReason
    sip_status: int | None = None
    sip_status_text: str | None = None
    detail: str = ""


class TransferMachine:
    """One transfer: its state, its destinations in failover order and its attempts."""

    def __init__(
        self,
        *,
        call_id: str,
        transfer_id: str,
        destinations: Sequence[Destination],
        mode: TransferMode,
        decision_id: str | None = None,
    ) -> None:
        self.call_id = call_id
        self.transfer_id = transfer_id
        self.decision_id = decision_id
        """The router decision behind the transfer, carried by every event."""
        self.mode = mode
        self._destinations = tuple(destinations)
        self._skipped = 0
        self.state = TransferState.REQUESTED
        self.attempt = 0
        """Number of the current (or last) dial attempt, from 1; 0 before the first."""
        self.destination: Destination | None = None
        self.history: list[TransferState] = [TransferState.REQUESTED]

    @property
    def remaining(self) -> int:
        """Destinations not yet dialled."""
        return len(self._destinations) - self.attempt

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def skip(self, destination: Destination, detail: str) -> Emitted:
        """Report a destination the policy refused; only before the first dial."""
        self._require({TransferState.REQUESTED}, "skip a destination of")
        if self.attempt:
            raise IllegalTransition(self.state, "skip a destination after dialling in")
        self._skipped += 1
        event = TransferFailed(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            decision_id=self.decision_id,
            reason=FailureReason.REJECTED_BY_POLICY,
            final=False,
            destination_id=destination.id,
            attempt=0,
            detail=detail,
        )
        return Emitted(event, self._id(f"skipped:{self._skipped}"))

    def queued(
        self, position: int, max_wait_s: float, estimated_wait_s: float | None = None
    ) -> Emitted:
        """No dial slot is free: the transfer waits its turn (before its first attempt)."""
        self._require({TransferState.REQUESTED}, "queue")
        if self.attempt:
            raise IllegalTransition(self.state, "queue a transfer that has dialled")
        self._enter(TransferState.QUEUED)
        event = TransferQueued(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            decision_id=self.decision_id,
            position=position,
            max_wait_s=max_wait_s,
            estimated_wait_s=estimated_wait_s,
        )
        return Emitted(event, self._id("queued"))

    def dial(self) -> Emitted:
        """Start dialling the next destination."""
        self._require({TransferState.REQUESTED, TransferState.QUEUED}, "dial")
        if not self.remaining:
            raise IllegalTransition(self.state, "dial past the last destination of")
        self.attempt += 1
        self.destination = self._destinations[self.attempt - 1]
        self._enter(TransferState.DIALING)
        return self._attempt_event(TransferDialing)

    def ringing(self) -> Emitted:
        self._require({TransferState.DIALING}, "ring")
        self._enter(TransferState.RINGING)
        return self._attempt_event(TransferRinging)

    def answered(
        self, consult_room: str | None = None, human_identity: str | None = None
    ) -> Emitted:
        """The far end picked up. Some answer without a ringing signal first."""
        self._require({TransferState.DIALING, TransferState.RINGING}, "answer")
        self._enter(TransferState.ANSWERED)
        event = TransferAnswered(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            decision_id=self.decision_id,
            destination_id=self._destination_id(),
            attempt=self.attempt,
            consult_room=consult_room,
            human_identity=human_identity,
        )
        return Emitted(event, self._id(f"answered:{self.attempt}"))

    def briefed(self) -> Emitted:
        """The human heard the briefing and accepted the call (warm transfers)."""
        if self.mode is not TransferMode.WARM:
            raise IllegalTransition(self.state, "brief the human of a cold transfer of")
        self._require({TransferState.ANSWERED}, "brief")
        self._enter(TransferState.BRIEFED)
        event = TransferBriefed(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            decision_id=self.decision_id,
            destination_id=self._destination_id(),
            attempt=self.attempt,
        )
        return Emitted(event, self._id(f"briefed:{self.attempt}"))

    def connected(self) -> Emitted:
        """Warm transfers connect after the briefing, cold ones straight after the answer."""
        before = TransferState.BRIEFED if self.mode is TransferMode.WARM else TransferState.ANSWERED
        self._require({before}, "connect")
        self._enter(TransferState.CONNECTED)
        event = TransferConnected(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            decision_id=self.decision_id,
            destination_id=self._destination_id(),
        )
        return Emitted(event, self._id(f"connected:{self.attempt}"))

    def fail(self, failure: AttemptFailure) -> list[Emitted]:
        """The current attempt failed: report it, then fail over or fail for good."""
        self._require(IN_ATTEMPT_STATES, "fail an attempt of")
        if failure.reason in NO_FAILOVER_REASONS:
            return [self._final(failure)]
        out = [self._attempt_failed(failure, final=False)]
        if self.remaining:
            self._enter(TransferState.REQUESTED)
        else:
            out.append(
                self._final(
                    AttemptFailure(
                        FailureReason.ALL_DESTINATIONS_FAILED,
                        detail=f"every dialled destination failed ({self.attempt})",
                    ),
                    in_attempt=False,
                )
            )
        return out

    def abandon(self, failure: AttemptFailure) -> Emitted:
        """Fail the whole transfer now, without failover (policy refusal, no dial slot in
        time, shutdown)."""
        if self.terminal:
            raise IllegalTransition(self.state, "abandon")
        return self._final(failure, in_attempt=self.state in IN_ATTEMPT_STATES)

    def cancel(self, reason: str) -> Emitted:
        if self.terminal:
            raise IllegalTransition(self.state, "cancel")
        self._enter(TransferState.CANCELLED)
        event = TransferCancelled(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            reason=reason,
            decision_id=self.decision_id,
        )
        return Emitted(event, self._id("cancelled"))

    def _final(self, failure: AttemptFailure, in_attempt: bool = True) -> Emitted:
        emitted = self._attempt_failed(failure, final=True, in_attempt=in_attempt)
        self._enter(TransferState.FAILED)
        return Emitted(emitted.event, self._id("failed:final"))

    def _attempt_failed(
        self, failure: AttemptFailure, *, final: bool, in_attempt: bool = True
    ) -> Emitted:
        event = TransferFailed(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            decision_id=self.decision_id,
            reason=failure.reason,
            final=final,
            destination_id=self.destination.id if in_attempt and self.destination else None,
            attempt=self.attempt,
            sip_status=failure.sip_status,
            sip_status_text=failure.sip_status_text,
            detail=failure.detail,
        )
        return Emitted(event, self._id(f"failed:{self.attempt}"))

    def _attempt_event(self, cls: type[TransferDialing] | type[TransferRinging]) -> Emitted:
        event = cls(
            call_id=self.call_id,
            transfer_id=self.transfer_id,
            decision_id=self.decision_id,
            destination_id=self._destination_id(),
            attempt=self.attempt,
        )
        return Emitted(event, self._id(f"{self.state.value}:{self.attempt}"))

    def _destination_id(self) -> str:
        assert self.destination is not None, "in an attempt there is always a destination"
        return self.destination.id

    def _require(self, allowed: set[TransferState] | frozenset[TransferState], action: str) -> None:
        if self.state not in allowed:
            raise IllegalTransition(self.state, action)

    def _enter(self, state: TransferState) -> None:
        self.state = state
        self.history.append(state)

    def _id(self, suffix: str) -> str:
        # Stable per transfer, state and attempt: a retried publish is a duplicate, never
        # a second event.
        return f"{self.transfer_id}:{suffix}"
