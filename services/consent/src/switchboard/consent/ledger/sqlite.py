"""SQLite backend: one file, WAL, STRICT tables, triggers that refuse UPDATE and DELETE.

The default for local runs and single-replica deployments (SQLite has one writer).
``synchronous=FULL`` by default so a committed record survives power loss;
``secure_delete`` so an erased caller key is overwritten on disk, not left in a free page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from switchboard.consent.ledger.sql import Column, Row, SqlStore
from switchboard.consent.ledger.store import StoreError, WriteTx

APPEND_ONLY_TABLES = ("consent_records", "checkpoints", "signing_keys")
SYNC_MODES = ("full", "normal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_records (
    seq INTEGER PRIMARY KEY,
    command_id TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    mode TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    language TEXT NOT NULL,
    source TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    subject TEXT,
    sealed BLOB,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS consent_records_call ON consent_records (call_id);
CREATE INDEX IF NOT EXISTS consent_records_subject ON consent_records (subject);
CREATE TABLE IF NOT EXISTS subject_keys (
    ref TEXT PRIMARY KEY,
    subject TEXT NOT NULL UNIQUE,
    wrapped BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS signing_keys (
    key_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    body_size INTEGER NOT NULL,
    body_sealed BLOB NOT NULL,
    stream_seq INTEGER,
    msg_id TEXT
) STRICT;
"""

_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END;
"""


class SqliteStore(SqlStore):
    """A ledger in one SQLite file."""

    backend = "sqlite"

    def __init__(self, path: Path | str, create: bool = True, synchronous: str = "full") -> None:
        if synchronous not in SYNC_MODES:
            raise StoreError(f"SQLite synchronous mode must be one of {', '.join(SYNC_MODES)}.")
        self.path = Path(path)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(f"No ledger database at {self.path}.")
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE for appends).
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={synchronous.upper()}",
            "secure_delete=ON",
            "busy_timeout=10000",
        ):
            self._conn.execute(f"PRAGMA {pragma}")
        if create:
            self._create_schema()

    def _create_schema(self) -> None:
        script = SCHEMA + "".join(_TRIGGERS.format(table=t) for t in APPEND_ONLY_TABLES)
        self._conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        # IMMEDIATE takes the write lock before reading the head, so no other writer can
        # chain from the same head.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self._conn.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def insert_rows(
        self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]
    ) -> None:
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" * len(columns))
        try:
            self._conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[Row]:
        # One statement reads one WAL snapshot, however long the walk takes.
        cursor = self._conn.execute(sql, tuple(params))
        try:
            while rows := cursor.fetchmany(2000):
                yield from rows
        finally:
            cursor.close()

    def _time_in(self, text: str) -> Any:
        return text

    def _time_out(self, value: Any) -> str:
        return str(value)

    def close(self) -> None:
        self._conn.close()
