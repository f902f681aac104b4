"""PostgreSQL backend for production: triggers refuse UPDATE, DELETE and TRUNCATE, and an
append holds an EXCLUSIVE table lock (readers go on) so concurrent ledger replicas chain
one after another.

An append is two round trips: BEGIN, the lock and its three reads go out as one
message; then both inserts (one statement each, a batch's rows as one JSON parameter)
and COMMIT as the next, whose outcome is known before the append returns.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
import psycopg
from psycopg.pq import Escaping, ExecStatus, TransactionStatus

from switchboard.consent.ledger.backoff import Backoff
from switchboard.consent.ledger.chain import format_time
from switchboard.consent.ledger.sql import (
    KEY_COLUMNS,
    SELECT_HEAD,
    SELECT_RECORDS,
    Column,
    Row,
    SqlStore,
)
from switchboard.consent.ledger.store import (
    EMPTY_HEAD,
    AppendBasis,
    StoreError,
    StoreUnavailable,
    WriteTx,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
"""A connection attempt gives up after this (it runs on the database thread)."""
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


@dataclass(frozen=True, slots=True)
class _Statement:
    """A statement the write path prepares once per session (``$n`` parameters)."""

    name: str
    types: tuple[str, ...]
    sql: str


_HEAD = _Statement("consent_head", (), SELECT_HEAD)
# The ids go in as one JSON array (quoting it is one C call; a text[] literal is quoted
# element by element in Python) and each is looked up on its own: a cached generic plan
# for "= ANY($1)" turns into a sequential scan when it was made while the table was small
# and stays one as the table grows; a lateral lookup by one key is an index scan always.
_RECORDS_BY_COMMAND = _Statement(
    "consent_records_by_command",
    ("jsonb",),
    f"SELECT r.* FROM jsonb_array_elements_text($1) AS i(id) CROSS JOIN LATERAL "
    f"({SELECT_RECORDS} WHERE command_id = i.id LIMIT 1) AS r",
)
_KEYS_BY_REF = _Statement(
    "consent_keys_by_ref",
    ("jsonb",),
    f"SELECT k.* FROM jsonb_array_elements_text($1) AS i(ref) CROSS JOIN LATERAL "
    f"(SELECT {KEY_COLUMNS} FROM subject_keys WHERE subject_keys.ref = i.ref LIMIT 1) AS k",
)
_BEGIN = ("BEGIN", "LOCK TABLE consent_records IN EXCLUSIVE MODE")
_FROM_JSON = {
    "bigint": "(r->>{i})::bigint",
    "text": "r->>{i}",
    "timestamptz": "(r->>{i})::timestamptz",
    "bytea": "decode(r->>{i}, 'base64')",
}
_json = msgspec.json.Encoder()


@cache
def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


@cache
def _bulk_insert(table: str, columns: tuple[Column, ...]) -> _Statement:
    # One statement with one parameter whatever the batch: the rows as a JSON array of
    # arrays (encoded in C by msgspec, bytes as base64, times as their canonical text),
    # unpacked by the server. Adapting value by value in Python cost more than the
    # database's own work.
    names = ", ".join(name for name, _ in columns)
    values = ", ".join(_FROM_JSON[kind].format(i=i) for i, (_, kind) in enumerate(columns))
    return _Statement(
        f"consent_insert_{table}",
        ("jsonb",),
        f"INSERT INTO {table} ({names}) SELECT {values} FROM jsonb_array_elements($1) AS r",
    )


class PostgresStore(SqlStore):
    """A ledger in a PostgreSQL database (the schema of the DSN's ``search_path``).

    One connection (its session holds the prepared statements and the append's lock).
    When it is lost (the server restarted, an operator terminated it, the network
    dropped), the call in progress raises ``StoreUnavailable`` and later calls reconnect,
    no more often than an exponential backoff allows (0.1 s doubling to 5 s, jittered);
    until then they raise ``StoreUnavailable`` at once. The outage is logged when it
    starts and when it ends, not per attempt.

    Neither tenacity nor psycopg_pool is used: a retry decorator would hold the caller
    (the database thread, and with it lookups that should answer ``unavailable`` now)
    while it retries, and a pool of one connection would add a thread to do what the
    backoff here does, with statements still to be prepared per session.
    """

    backend = "postgresql"

    def __init__(self, dsn: str, create: bool = True) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection[Any] | None = None
        self._backoff = Backoff()
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._prepared: set[str] = set()
        self._pending: list[str] | None = None
        """Statements of the open write transaction not sent yet (None: no transaction)."""
        self._connect()  # at start the caller decides: the service does not start
        if create:
            self._create_schema()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            # psycopg's own automatic preparing is off: it answers a ROLLBACK, DROP or
            # ALTER with DEALLOCATE ALL, which would also drop the statements of _call.
            conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                prepare_threshold=None,
            )
            conn.execute("SET TIME ZONE 'UTC'")
        except psycopg.Error as exc:
            raise StoreUnavailable(f"Cannot connect to the ledger database: {exc}") from exc
        self._conn = conn
        self._binder = psycopg.ClientCursor(conn)
        self._escaping = Escaping(conn.pgconn)
        self._cursor = conn.cursor()  # reused: _run is on every append's path
        self._prepared = set()  # prepared statements belong to the session that is gone
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, reconnecting when the backoff allows; else ``StoreUnavailable``."""
        if self._conn is not None:
            return self._conn
        if time.monotonic() < self._retry_at:
            raise StoreUnavailable("The ledger database is unreachable; reconnecting.")
        try:
            conn = self._connect()
        except StoreUnavailable:
            self._retry_at = time.monotonic() + self._backoff.next()
            raise
        self._backoff.reset()
        if self._down_since is not None:
            log.info(
                "The ledger database is reachable again.",
                extra={"outage_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None
        return conn

    def _failed(self, exc: psycopg.Error) -> StoreError:
        """What to raise for ``exc``: ``StoreUnavailable`` when the connection is gone
        (dropped, so the next call reconnects), else ``StoreError``."""
        conn = self._conn
        if conn is not None and not conn.broken and not conn.closed:
            return StoreError(str(exc))
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "The ledger database is unreachable; reconnecting with backoff.",
                extra={"error_type": type(exc).__name__},
            )
        self._conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        self._retry_at = time.monotonic() + self._backoff.next()
        return StoreUnavailable(f"The ledger database connection was lost: {exc}")

    def _create_schema(self) -> None:
        script = SCHEMA + "".join(_TRIGGERS.format(table=t) for t in APPEND_ONLY_TABLES)
        conn = self._live()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                conn.execute(script.encode())
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        # Round trips, not the database, dominated an append (each statement is one, and
        # COMMIT waits for the WAL flush anyway). Inside this transaction statements are
        # bound on the client (psycopg quotes every value) and queued, then sent with the
        # next statement whose rows are needed as one simple-protocol message: BEGIN, the
        # lock and an append's reads in one round trip; its inserts and COMMIT in the
        # next, whose outcome is known before this returns.
        if self._pending is not None:
            raise StoreError("A write transaction is already open on this connection.")
        self._pending = list(_BEGIN)
        try:
            yield self
            self._run(["COMMIT"])
        finally:
            self._pending = None
            # Not committed (an error, or an exception in the block): end the transaction.
            conn = self._conn
            if conn is not None and conn.info.transaction_status != TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()

    def read_for_append(self, command_ids: Sequence[str], refs: Sequence[str]) -> AppendBasis:
        head, existing, keys = self._run(
            [
                self._call(_HEAD),
                self._call(_RECORDS_BY_COMMAND, _json.encode(command_ids)),
                self._call(_KEYS_BY_REF, _json.encode(refs)),
            ]
        )
        return AppendBasis(
            head=(int(head[0][0]), bytes(head[0][1])) if head else EMPTY_HEAD,
            existing=self._records_by_command(existing),
            keys={k.ref: k for k in map(self._key, keys)},
        )

    def insert_rows(
        self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]
    ) -> None:
        if not rows:
            return
        call = self._call(_bulk_insert(table, tuple(columns)), _json.encode(rows))
        if self._pending is not None:
            self._pending.append(call)
        else:
            self._run([call])

    def _bind(self, sql: str, params: Sequence[Any]) -> str:
        """``sql`` with its parameters merged in as quoted literals."""
        return self._binder.mogrify(_pg(sql), tuple(params)) if params else sql

    def _call(self, statement: _Statement, *params: bytes) -> str:
        """An EXECUTE of ``statement`` with ``params`` (UTF-8 text) as quoted literals.
        Prepared statements are planned once per session: planning cost more than running
        these small queries."""
        if statement.name not in self._prepared:
            types = f"({', '.join(statement.types)})" if statement.types else ""
            conn = self._live()
            try:
                conn.execute(f"PREPARE {statement.name}{types} AS {statement.sql}".encode())
            except psycopg.Error as exc:
                raise self._failed(exc) from exc
            self._prepared.add(statement.name)
        if not params:
            return f"EXECUTE {statement.name}"
        # libpq's own quoting for this connection (PQescapeLiteral), one C call per value.
        literals = ", ".join(self._escaping.escape_literal(p).decode() for p in params)
        return f"EXECUTE {statement.name}({literals})"

    def _run(self, statements: Sequence[str]) -> list[list[Row]]:
        """Send the queued statements and ``statements`` as one message; the rows each of
        ``statements`` returned. The server stops at the first error (which is raised)."""
        batch = [*(self._pending or ()), *statements]
        if self._pending is not None:
            self._pending = []
        self._live()
        try:
            cur = self._cursor
            cur.execute(";\n".join(batch).encode(), prepare=False)
            results: list[list[Row]] = []
            while True:
                result = cur.pgresult
                rows = result is not None and result.status == ExecStatus.TUPLES_OK
                found: list[Row] = list(cur.fetchall()) if rows else []
                results.append(found)
                if not cur.nextset():
                    break
        except psycopg.errors.InvalidSqlStatementName as exc:
            # Someone deallocated our statements: prepare them again on the next use.
            self._prepared.clear()
            raise StoreError(str(exc)) from exc
        except psycopg.Error as exc:
            raise self._failed(exc) from exc
        return results[len(results) - len(statements) :]

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._pending is not None:
            return self._run([self._bind(sql, params)])[0]
        conn = self._live()
        try:
            rows: list[Row] = list(conn.execute(_pg(sql), tuple(params)).fetchall())
            return rows
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._pending is not None:
            self._pending.append(self._bind(sql, params))
            return
        conn = self._live()
        try:
            conn.execute(_pg(sql), tuple(params))
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[Row]:
        # A server-side cursor inside one transaction: one snapshot, bounded memory.
        conn = self._live()
        try:
            with conn.transaction(), conn.cursor(name="ledger_walk") as cur:
                cur.itersize = 2000
                cur.execute(_pg(sql), tuple(params))
                yield from cur
        except psycopg.Error as exc:
            raise self._failed(exc) from exc

    def _time_in(self, text: str) -> Any:
        # The canonical text as is: PostgreSQL reads it as a timestamptz (parameters of
        # type str are sent as "unknown", bulk inserts cast), so no parsing in Python.
        return text

    def _time_out(self, value: Any) -> str:
        if isinstance(value, dt.datetime):
            return format_time(value)
        return str(value)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
