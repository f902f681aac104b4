"""Admission control for transfers: the allow-list, then a place in line for a dial slot.

``admit`` runs before anything is dialled. It screens every destination against the
allow-list (refused ones are skipped and reported; duplicates are dialled once), then
claims a dial slot (``slots.py``): at once when one is free, else a place in line. Only
two things refuse a transfer: no destination passes the allow-list
(``rejected_by_policy``), or the line is at its maximum length (``rate_limited``).
Failover attempts do not go through admission again; they ``pace`` on the same
calls-per-second bucket, so a transfer that is already under way waits rather than fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from switchboard.contracts.escalation import Destination
from switchboard.contracts.transfer import FailureReason
from switchboard.sip_bridge.allowlist import DestinationAllowList
from switchboard.sip_bridge.slots import DialSlots, LineFull, Ticket


@dataclass(frozen=True, slots=True)
class Skipped:
    """A destination admission refused, and why (the rule, never the address)."""

    destination: Destination
    rule: str


@dataclass(frozen=True, slots=True)
class Screened:
    """Destinations split into those the bridge will dial (in order) and those refused."""

    allowed: list[Destination] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Nothing will be dialled."""

    reason: FailureReason
    detail: str
    screened: Screened


@dataclass(frozen=True, slots=True)
class Admission:
    """The transfer may start: at once when ``ticket.granted``, else when its turn comes.
    Once granted it holds one concurrency slot until ``release``."""

    screened: Screened
    ticket: Ticket


class AdmissionControl:
    """The bridge's own limits, applied to every transfer whatever the request says."""

    def __init__(self, allow_list: DestinationAllowList, slots: DialSlots) -> None:
        self.allow_list = allow_list
        self.slots = slots

    def screen(self, destinations: Sequence[Destination]) -> Screened:
        screened = Screened()
        seen: set[str] = set()
        for destination in destinations:
            if destination.address in seen:
                # Dialling the same line twice in one transfer only doubles the bill.
                screened.skipped.append(Skipped(destination, "the address repeats an earlier one"))
                continue
            seen.add(destination.address)
            verdict = self.allow_list.check(destination)
            if verdict.allowed:
                screened.allowed.append(destination)
            else:
                screened.skipped.append(Skipped(destination, verdict.rule))
        return screened

    def admit(self, destinations: Sequence[Destination]) -> Admission | Refusal:
        screened = self.screen(destinations)
        if not screened.allowed:
            return Refusal(
                FailureReason.REJECTED_BY_POLICY,
                "no destination passed the bridge's allow-list",
                screened,
            )
        try:
            ticket = self.slots.claim()
        except LineFull as exc:
            return Refusal(FailureReason.RATE_LIMITED, str(exc), screened)
        return Admission(screened, ticket)

    async def pace(self) -> None:
        """Wait for a dial token (failover attempts of an admitted transfer)."""
        await self.slots.take_token()

    def release(self) -> None:
        """An admitted transfer that held a slot ended."""
        self.slots.release()
