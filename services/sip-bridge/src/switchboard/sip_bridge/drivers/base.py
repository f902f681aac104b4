"""The interface every carrier driver implements, and what one dial attempt needs.

The transfer desk drives the state machine and calls a driver for the I/O of each step:
``dial`` returns once the human answered (calling ``on_ringing`` when the far end rings)
or raises ``DialFailed`` with a typed reason; ``brief`` and ``connect`` finish a warm
transfer; ``hang_up`` ends the current attempt's leg and ``finish`` cleans up after the
whole transfer. Drivers never log addresses or the whisper: they log destination ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from switchboard.contracts.escalation import Destination
from switchboard.contracts.handoff import HandoffContext
from switchboard.contracts.transfer import FailureReason, TransferMode
from switchboard.sip_bridge.machine import AttemptFailure

OnRinging = Callable[[], Awaitable[None]]

RING_TIMEOUT = "ring timeout"
"""Failure detail when nobody answered within the ring timeout (no SIP final response)."""


@dataclass(frozen=True, slots=True)
class DialPlan:
    """One attempt of one transfer: who to dial and where the caller waits."""

    call_id: str
    transfer_id: str
    attempt: int
    destination: Destination
    room: str
    """The caller's room."""
    caller_identity: str
    mode: TransferMode
    ring_timeout_s: float
    context: HandoffContext | None = None
    whisper: str | None = None
    """Personal data: what the human hears before being connected. Never logged."""

    @property
    def consult_room(self) -> str:
        return consult_room_name(self.room, self.transfer_id)

    @property
    def log_extra(self) -> dict[str, object]:
        """Safe facts for log records: ids only, never the address or the whisper."""
        return {
            "call_id": self.call_id,
            "transfer_id": self.transfer_id,
            "destination_id": self.destination.id,
            "attempt": self.attempt,
        }


@dataclass(frozen=True, slots=True)
class Answered:
    """The human picked up; warm transfers name the room they wait in."""

    consult_room: str | None = None


class DialFailed(Exception):
    """An attempt failed for a reason the state machine understands."""

    def __init__(
        self,
        reason: FailureReason,
        sip_status: int | None = None,
        sip_status_text: str | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(detail or reason.value)
        self.failure = AttemptFailure(reason, sip_status, sip_status_text, detail)


class CarrierDriver(Protocol):
    """How calls are placed. Every method may be cancelled (the desk cancels on timeout)."""

    name: str

    async def dial(self, plan: DialPlan, on_ringing: OnRinging) -> Answered:
        """Dial the destination; return when answered, raise ``DialFailed`` otherwise."""
        ...

    async def brief(self, plan: DialPlan, answered: Answered) -> None:
        """Warm transfers: let the human hear the briefing; ``DialFailed`` if they drop."""
        ...

    async def connect(self, plan: DialPlan, answered: Answered) -> None:
        """Put the human and the caller together (cold: complete the REFER)."""
        ...

    async def hang_up(self, plan: DialPlan) -> None:
        """End this attempt's leg. Best effort and idempotent."""
        ...

    async def finish(self, plan: DialPlan) -> None:
        """The transfer is over, whatever the outcome: release what it held."""
        ...

    async def aclose(self) -> None: ...


def consult_room_name(room: str, transfer_id: str) -> str:
    """``<room>-consult-<short>``: one consult room per transfer, derived, so every process
    agrees on it. The short part is a digest, so any transfer id yields a safe name."""
    return f"{room}-consult-{short_token(transfer_id)}"


def short_token(value: str, size: int = 4) -> str:
    """A short, stable, header- and name-safe token for an arbitrary id."""
    return hashlib.blake2s(value.encode(), digest_size=size).hexdigest()
