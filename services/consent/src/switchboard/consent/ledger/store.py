"""The storage interface the ledger needs, and the rows it stores.

Two backends implement it (SQLite, PostgreSQL). Hashing, sealing and verification live
above this layer, so a backend only stores and returns rows; ``write`` gives an exclusive
transaction so two ledger processes can never chain from the same head.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import msgspec

from switchboard.consent.ledger.chain import GENESIS, StoredRecord
from switchboard.contracts.consent import LedgerCheckpoint


class StoreError(RuntimeError):
    """The database refused an operation or is unusable."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now (connection lost or refused); the store
    reconnects by itself, so the same call may succeed later."""


class SubjectKey(msgspec.Struct, frozen=True):
    """One person's key: keyed hash of the number -> pseudonym and wrapped AES key."""

    ref: str
    subject: str
    wrapped: bytes
    created_at: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A command that can never be applied; outside the chain, body kept encrypted."""

    received_at: str
    reason: str
    subject: str
    body_sha256: str
    body_size: int
    body_sealed: bytes
    stream_seq: int | None = None
    msg_id: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AppendBasis:
    """What an append reads first, inside its transaction: the head it chains from, the
    records already holding its command ids, and the keys its callers already have."""

    head: tuple[int, bytes]
    existing: dict[str, StoredRecord]
    keys: dict[str, SubjectKey]


class WriteTx(Protocol):
    """What an append does inside its exclusive transaction: one read, then one write
    (a backend may send each as a single round trip)."""

    def read_for_append(self, command_ids: Sequence[str], refs: Sequence[str]) -> AppendBasis:
        """The head, the records of ``command_ids`` and the keys of ``refs``."""

    def insert(self, keys: Sequence[SubjectKey], records: Sequence[StoredRecord]) -> None:
        """Store new callers' keys and the newly chained records."""


class LedgerStore(ABC):
    """A ledger database."""

    backend: str
    """``sqlite`` or ``postgresql``."""

    @abstractmethod
    def write(self) -> AbstractContextManager[WriteTx]:
        """An exclusive write transaction; commits on a clean exit, rolls back otherwise."""

    @abstractmethod
    def head(self) -> tuple[int, bytes]:
        """(sequence, hash) of the last record; (0, GENESIS) when empty."""

    @abstractmethod
    def iter_records(self, from_seq: int = 1) -> Iterator[StoredRecord]:
        """Records from ``from_seq`` on, in sequence order, read from one snapshot."""

    @abstractmethod
    def record(self, seq: int) -> StoredRecord | None: ...

    @abstractmethod
    def records_by_call(self, call_id: str, limit: int) -> list[StoredRecord]: ...

    @abstractmethod
    def records_by_subject(self, subject: str, limit: int) -> list[StoredRecord]: ...

    @abstractmethod
    def count_by_subject(self, subject: str) -> int: ...

    @abstractmethod
    def subject_key(self, ref: str) -> SubjectKey | None: ...

    @abstractmethod
    def subject_keys_for(self, subjects: Sequence[str]) -> dict[str, SubjectKey]:
        """Keys by pseudonym (for reading records found by call)."""

    @abstractmethod
    def delete_subject_key(self, ref: str) -> SubjectKey | None:
        """Destroy one person's key; returns what was deleted."""

    @abstractmethod
    def insert_checkpoint(self, checkpoint: LedgerCheckpoint) -> None: ...

    @abstractmethod
    def checkpoints(self) -> list[LedgerCheckpoint]: ...

    @abstractmethod
    def add_signing_key(self, key_id: str, public_key: bytes) -> None: ...

    @abstractmethod
    def signing_keys(self) -> dict[str, bytes]: ...

    @abstractmethod
    def insert_dead_letter(self, letter: DeadLetter) -> int: ...

    @abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    @abstractmethod
    def close(self) -> None: ...


EMPTY_HEAD: tuple[int, bytes] = (0, GENESIS)
