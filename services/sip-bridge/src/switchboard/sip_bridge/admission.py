"""Admission control for transfers: allow-list, calls-per-second and concurrency caps.

``admit`` runs before anything is dialled. It screens every destination against the
allow-list (refused ones are skipped and reported; duplicates are dialled once), then
checks the concurrency cap and the calls-per-second bucket. A refusal carries the typed
reason the bridge replies with: ``rejected_by_policy`` or ``rate_limited``. Failover
attempts do not go through admission again; they ``pace`` on the same bucket instead,
so a transfer that is already under way waits for its turn rather than failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from switchboard.contracts.escalation import Destination
from switchboard.contracts.transfer import FailureReason
from switchboard.sip_bridge.allowlist import DestinationAllowList
from switchboard.sip_bridge.limits import ConcurrencyCap, TokenBucket


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
    """The transfer may start; it holds one concurrency slot until ``release``."""

    screened: Screened


class AdmissionControl:
    """The bridge's own limits, applied to every transfer whatever the request says."""

    def __init__(
        self, allow_list: DestinationAllowList, bucket: TokenBucket, cap: ConcurrencyCap
    ) -> None:
        self.allow_list = allow_list
        self.bucket = bucket
        self.cap = cap

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
        # The cap is checked first so a refused transfer does not spend a dial token.
        if not self.cap.try_acquire():
            return Refusal(
                FailureReason.RATE_LIMITED,
                f"{self.cap.limit} transfers are already in progress",
                screened,
            )
        if not self.bucket.try_take():
            self.cap.release()
            return Refusal(
                FailureReason.RATE_LIMITED, "the calls-per-second cap is reached", screened
            )
        return Admission(screened)

    async def pace(self) -> None:
        """Wait for a dial token (failover attempts of an admitted transfer)."""
        # Polling the bucket's own refill time: tokens come from the clock, not an event.
        while True:
            if self.bucket.try_take():
                return
            await asyncio.sleep(self.bucket.wait_time() or 0.001)

    def release(self) -> None:
        """An admitted transfer ended."""
        self.cap.release()
