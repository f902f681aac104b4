"""PostgreSQL backend for production: triggers refuse UPDATE, DELETE and TRUNCATE, and an
append holds an EXCLUSIVE table lock (readers go on) so concurrent ledger replicas chain
one after another.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg

from switchboard.consent.ledger.chain import format_time, parse_time
from switchboard.consent.ledger.sql import Row, SqlStore
from switchboard.consent.ledger.store import StoreError, WriteTx

APPEND_ONLY_TABLES = ("consent_records", "checkpoints", "signing_keys")
SCHEMA_LOCK = 0x5B_C0_75_E7  # advisory lock id: one process creates the schema at a time

SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_records (
    seq BIGINT PRIMARY KEY,
    command_id TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    mode TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    language TEXT NOT NULL,
    source TEXT NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    subject TEXT,
    sealed BYTEA,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_records_call ON consent_records (call_id);
CREATE INDEX IF NOT EXISTS consent_records_subject ON consent_records (subject);
CREATE TABLE IF NOT EXISTS subject_keys (
    ref TEXT PRIMARY KEY,
    subject TEXT NOT NULL UNIQUE,
    wrapped BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    key_id TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    reason TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    body_size INTEGER NOT NULL,
    body_sealed BYTEA NOT NULL,
    stream_seq BIGINT,
    msg_id TEXT
);
CREATE OR REPLACE FUNCTION consent_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$;
"""

_TRIGGERS = """
CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION consent_refuse_change();
CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION consent_refuse_change();
"""


@cache
def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresStore(SqlStore):
    """A ledger in a PostgreSQL database (the schema of the DSN's ``search_path``)."""

    backend = "postgresql"

    def __init__(self, dsn: str, create: bool = True) -> None:
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"Cannot connect to the ledger database: {exc}") from exc
        self._conn.execute("SET TIME ZONE 'UTC'")
        if create:
            self._create_schema()

    def _create_schema(self) -> None:
        script = SCHEMA + "".join(_TRIGGERS.format(table=t) for t in APPEND_ONLY_TABLES)
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self._conn.execute(script.encode())

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        try:
            with self._conn.transaction():
                self._conn.execute("LOCK TABLE consent_records IN EXCLUSIVE MODE")
                yield self
        except psycopg.Error as exc:
            raise StoreError(str(exc)) from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            rows: list[Row] = list(self._conn.execute(_pg(sql), tuple(params)).fetchall())
            return rows
        except psycopg.Error as exc:
            raise StoreError(str(exc)) from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self._conn.execute(_pg(sql), tuple(params))
        except psycopg.Error as exc:
            raise StoreError(str(exc)) from exc

    def _execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            with self._conn.cursor() as cur:
                cur.executemany(_pg(sql), list(rows))
        except psycopg.Error as exc:
            raise StoreError(str(exc)) from exc

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[Row]:
        # A server-side cursor inside one transaction: one snapshot, bounded memory.
        with self._conn.transaction(), self._conn.cursor(name="ledger_walk") as cur:
            cur.itersize = 2000
            cur.execute(_pg(sql), tuple(params))
            yield from cur

    def _time_in(self, text: str) -> Any:
        return parse_time(text)

    def _time_out(self, value: Any) -> str:
        if isinstance(value, dt.datetime):
            return format_time(value)
        return str(value)

    def close(self) -> None:
        self._conn.close()
