"""The interface every carrier driver implements, and what one dial attempt needs.

The transfer desk drives the state machine and calls a driver for the I/O of each step:
``dial`` returns once the far end answered (calling ``on_ringing`` when it rings) or
raises ``DialFailed`` with a typed reason; while the human is briefed (by the voice
worker's briefing session in the consult room) ``human_left`` returns if they hang up;
``connect`` moves an accepting human to the caller; ``supervise`` follows the connected
call until one party leaves and ends the other's leg; ``hang_up`` ends the current
attempt's leg and ``finish`` cleans up after the whole transfer. Drivers never log
addresses: they log destination ids.
"""

from __future__ import annotations

import hashlib
import re
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
    """One attempt of one transfer: who to dial, where the caller waits, where the human
    is briefed."""

    call_id: str
    transfer_id: str
    attempt: int
    destination: Destination
    room: str
    """The caller's room."""
    caller_identity: str
    mode: TransferMode
    ring_timeout_s: float
    consult_room: str
    """Warm transfers: the room the human is dialled into and briefed in."""
    context: HandoffContext | None = None

    @property
    def human_identity(self) -> str:
        """The dialled human's participant identity: unique per transfer and attempt."""
        return f"human-{short_token(self.transfer_id)}-{self.attempt}"

    @property
    def log_extra(self) -> dict[str, object]:
        """Safe facts for log records: ids only, never the address."""
        return {
            "call_id": self.call_id,
            "transfer_id": self.transfer_id,
            "destination_id": self.destination.id,
            "attempt": self.attempt,
        }


@dataclass(frozen=True, slots=True)
class Answered:
    """The far end picked up; warm transfers name the room and identity it is in."""

    consult_room: str | None = None
    human_identity: str | None = None


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

    async def human_left(self, plan: DialPlan) -> None:
        """Warm transfers, while the human is briefed: return if they hang up (the desk
        cancels this once the human decided)."""
        ...

    async def connect(self, plan: DialPlan, answered: Answered) -> None:
        """Put the human and the caller together (cold: complete the REFER)."""
        ...

    async def supervise(self, plan: DialPlan) -> None:
        """After ``connect``: return once the call is over, having ended the leg of whoever
        is left when the other hangs up, so no leg outlives its call."""
        ...

    async def hang_up(self, plan: DialPlan) -> None:
        """End this attempt's leg. Best effort and idempotent."""
        ...

    async def finish(self, plan: DialPlan) -> None:
        """The transfer is over, whatever the outcome: release what it held."""
        ...

    async def aclose(self) -> None: ...


CONSULT_INFIX = "-consult-"
_CONSULT_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,40}")


def consult_room_name(room: str, transfer_id: str) -> str:
    """``<room>-consult-<short>``: one consult room per transfer, derived, so every process
    agrees on it. The short part is a digest, so any transfer id yields a safe name."""
    return f"{room}{CONSULT_INFIX}{short_token(transfer_id)}"


def is_consult_room_of(name: str, room: str) -> bool:
    """Whether ``name`` is a consult room of the caller's ``room`` (never the caller's room
    itself, nor another caller's): the bridge dials humans into nothing else."""
    prefix = f"{room}{CONSULT_INFIX}"
    return name.startswith(prefix) and bool(_CONSULT_TOKEN.fullmatch(name[len(prefix) :]))


def short_token(value: str, size: int = 4) -> str:
    """A short, stable, header- and name-safe token for an arbitrary id."""
    return hashlib.blake2s(value.encode(), digest_size=size).hexdigest()
