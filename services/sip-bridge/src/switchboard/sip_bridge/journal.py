"""The transfer journal: what each bridge instance holds, kept where a new one finds it.

A bridge that crashes (``kill -9``, a lost node) leaves its transfers mid-dial: nothing
publishes their end, the legs stay up and the caller waits. So the desk writes a record
per transfer when it accepts one, updates it when it dials an attempt, and marks it ended
with its final state. The record names its *owner*, the bridge instance (its
``nats.micro`` id) running it. Another instance, or the restarted one, that finds a
record whose owner no longer answers claims it (compare-and-set: one claimant wins),
hangs up the attempt's leg, publishes the final event and marks it ended; a cancel for
it is then answered from the record. The service keeps the records in a NATS KV bucket
(``journal_kv``); the desk only sees this interface. The record holds ids, rooms and the
destination being dialled, never the handoff context (personal data).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from switchboard.contracts.escalation import Destination
from switchboard.contracts.transfer import TransferMode


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One transfer as its owner last recorded it."""

    call_id: str
    transfer_id: str
    owner: str
    """The ``nats.micro`` id of the bridge instance running (or that ended) it."""
    room: str
    caller_identity: str
    mode: TransferMode
    consult_room: str
    ring_timeout_s: float
    attempt: int = 0
    """The attempt being dialled; 0 while it waits for a dial slot."""
    destination: Destination | None = None
    ended: str = ""
    """The final state (``connected``, ``failed``, ``cancelled``) once it ended."""
    cancel_reason: str = ""
    decision_id: str | None = None
    """The router decision behind the transfer, for the events another instance publishes."""


class Claim(msgspec.Struct, frozen=True):
    """A record as read, with the revision a compare-and-set must match."""

    entry: JournalEntry
    revision: int


class Journal(Protocol):
    """Where the desk keeps its transfer records."""

    async def save(self, entry: JournalEntry) -> None:
        """Write the record (the owner's own writes need no compare-and-set)."""
        ...

    async def load(self, transfer_id: str) -> Claim | None: ...

    async def active(self) -> list[Claim]:
        """Every record not ended yet."""
        ...

    async def claim(self, claim: Claim, owner: str) -> bool:
        """Take the record over if nobody changed it since it was read."""
        ...

    async def owner_alive(self, owner: str) -> bool:
        """Whether the bridge instance ``owner`` still answers."""
        ...


class NoJournal:
    """Keeps nothing: a desk without crash recovery (tests of the desk alone)."""

    async def save(self, entry: JournalEntry) -> None:
        return None

    async def load(self, transfer_id: str) -> Claim | None:
        return None

    async def active(self) -> list[Claim]:
        return []

    async def claim(self, claim: Claim, owner: str) -> bool:
        return False

    async def owner_alive(self, owner: str) -> bool:
        return True
