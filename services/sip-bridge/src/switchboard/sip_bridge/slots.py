"""Dial slots: a busy moment is a queue, not a failure.

A transfer may dial when it holds a dial slot: a concurrency slot (at most
``SB_TRANSFER_MAX_CONCURRENT`` transfers in progress) and a calls-per-second token. When
none is free, the transfer waits in line, first come first served, with its position and,
when the calls-per-second rate is what it waits for, an estimate of its wait. Only a line
that is already ``SB_TRANSFER_MAX_QUEUED`` long refuses a newcomer: that is a flood (a
runaway loop or a fraud attempt), not a busy moment.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from switchboard.sip_bridge.limits import ConcurrencyCap, TokenBucket


class LineFull(RuntimeError):
    """The waiting line is at its maximum length."""


@dataclass(eq=False, slots=True)
class Ticket:
    """A place in the line; ``granted`` once it holds a dial slot."""

    granted: bool = False


class DialSlots:
    """Concurrency slots and calls-per-second tokens, handed out in arrival order."""

    def __init__(self, cap: ConcurrencyCap, bucket: TokenBucket, max_waiting: int) -> None:
        self.cap = cap
        self.bucket = bucket
        self.max_waiting = max_waiting
        self._line: deque[Ticket] = deque()
        self._changed = asyncio.Event()

    @property
    def waiting(self) -> int:
        return len(self._line)

    def claim(self) -> Ticket:
        """A granted ticket when a slot is free and nobody is waiting; else a place in line.

        Raises ``LineFull`` when the line is at its maximum length.
        """
        ticket = Ticket()
        if not self._line and not self.cap.full and self.bucket.try_take():
            self.cap.try_acquire()
            ticket.granted = True
            return ticket
        if len(self._line) >= self.max_waiting:
            raise LineFull(f"{len(self._line)} transfers are already waiting for a dial slot")
        self._line.append(ticket)
        return ticket

    def position(self, ticket: Ticket) -> int:
        """1 for the next to dial; 0 once granted."""
        if ticket.granted:
            return 0
        return self._line.index(ticket) + 1

    def estimated_wait(self, ticket: Ticket) -> float | None:
        """Seconds until the ticket's turn by the calls-per-second rate; ``None`` while
        every concurrency slot is taken (that wait depends on how long calls last)."""
        if ticket.granted:
            return 0.0
        if self.cap.full:
            return None
        return round(self.bucket.time_for(self.position(ticket)), 1)

    async def wait(self, ticket: Ticket) -> None:
        """Wait until ``ticket`` holds a slot. Cancelling it gives up the place in line."""
        try:
            while not ticket.granted:
                if self._line[0] is ticket and not self.cap.full:
                    delay = self.bucket.wait_time()
                    if delay <= 0 and self.bucket.try_take():
                        self.cap.try_acquire()
                        self._line.popleft()
                        ticket.granted = True
                        self._notify()
                        return
                    # Tokens come from the clock, not an event: sleep until the next one,
                    # or until a change (a cancelled place, a released slot) moves the line.
                    await self._changes(max(delay, 0.001))
                else:
                    await self._changes(None)
        finally:
            self.leave(ticket)

    def leave(self, ticket: Ticket) -> None:
        """Give up a place in line (a cancelled transfer); nothing once granted."""
        if not ticket.granted and ticket in self._line:
            self._line.remove(ticket)
            self._notify()

    def release(self) -> None:
        """A transfer holding a slot ended."""
        self.cap.release()
        self._notify()

    async def take_token(self) -> None:
        """A failover attempt of a transfer that already holds a concurrency slot waits for
        a calls-per-second token only (it was in line once already)."""
        while not self.bucket.try_take():
            await self._changes(self.bucket.wait_time() or 0.001)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _changes(self, timeout: float | None) -> None:
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return
