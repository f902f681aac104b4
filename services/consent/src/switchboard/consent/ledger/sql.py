"""The SQL both backends share; each backend supplies its connection, schema, locking and
how times are stored. Statements use ``?`` placeholders; PostgreSQL rewrites them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from switchboard.consent.ledger.chain import ChainRecord, StoredRecord, format_time, parse_time
from switchboard.consent.ledger.store import (
    EMPTY_HEAD,
    AppendBasis,
    DeadLetter,
    LedgerStore,
    SubjectKey,
)
from switchboard.contracts.consent import LedgerCheckpoint

Column = tuple[str, str]
"""A column's name and its PostgreSQL type (the PostgreSQL bulk insert casts to it)."""

RECORD_TABLE: tuple[Column, ...] = (
    ("seq", "bigint"),
    ("command_id", "text"),
    ("call_id", "text"),
    ("decision", "text"),
    ("jurisdiction", "text"),
    ("mode", "text"),
    ("notice_version", "text"),
    ("language", "text"),
    ("source", "text"),
    ("decided_at", "timestamptz"),
    ("recorded_at", "timestamptz"),
    ("subject", "text"),
    ("sealed", "bytea"),
    ("prev_hash", "bytea"),
    ("hash", "bytea"),
)
KEY_TABLE: tuple[Column, ...] = (
    ("ref", "text"),
    ("subject", "text"),
    ("wrapped", "bytea"),
    ("created_at", "timestamptz"),
)
RECORD_COLUMNS = ", ".join(name for name, _ in RECORD_TABLE)
SELECT_RECORDS = f"SELECT {RECORD_COLUMNS} FROM consent_records"
KEY_COLUMNS = ", ".join(name for name, _ in KEY_TABLE)
SELECT_HEAD = "SELECT seq, hash FROM consent_records ORDER BY seq DESC LIMIT 1"
_DEAD_COLUMNS = (
    "received_at, reason, subject, body_sha256, body_size, body_sealed, stream_seq, msg_id"
)

Row = Sequence[Any]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SqlStore(LedgerStore):
    """Everything but connection, schema, locking and time conversion."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def insert_rows(
        self, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` (values in ``columns`` order) into ``table``, in bulk."""

    @abstractmethod
    def _time_in(self, text: str) -> Any:
        """The database value for a canonical time text."""

    @abstractmethod
    def _time_out(self, value: Any) -> str:
        """The canonical time text of a database value."""

    # -- rows ---------------------------------------------------------------------------

    def _record(self, row: Row) -> StoredRecord:
        record = ChainRecord(
            seq=int(row[0]),
            command_id=row[1],
            call_id=row[2],
            decision=row[3],
            jurisdiction=row[4],
            mode=row[5],
            notice_version=row[6],
            language=row[7],
            source=row[8],
            decided_at=self._time_out(row[9]),
            recorded_at=self._time_out(row[10]),
            subject=row[11],
            sealed=bytes(row[12]) if row[12] is not None else None,
        )
        return StoredRecord(record=record, prev_hash=bytes(row[13]), hash=bytes(row[14]))

    def _record_params(self, stored: StoredRecord) -> tuple[Any, ...]:
        r = stored.record
        return (
            r.seq,
            r.command_id,
            r.call_id,
            r.decision,
            r.jurisdiction,
            r.mode,
            r.notice_version,
            r.language,
            r.source,
            self._time_in(r.decided_at),
            self._time_in(r.recorded_at),
            r.subject,
            r.sealed,
            stored.prev_hash,
            stored.hash,
        )

    def _key(self, row: Row) -> SubjectKey:
        return SubjectKey(
            ref=row[0], subject=row[1], wrapped=bytes(row[2]), created_at=self._time_out(row[3])
        )

    def _checkpoint(self, row: Row) -> LedgerCheckpoint:
        return LedgerCheckpoint(
            sequence=int(row[0]),
            head_hash=row[1],
            created_at=parse_time(self._time_out(row[2])),
            key_id=row[3],
            signature=row[4],
        )

    # -- write transaction (WriteTx) -----------------------------------------------------

    def head(self) -> tuple[int, bytes]:
        rows = self._query(SELECT_HEAD)
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else EMPTY_HEAD

    def read_for_append(self, command_ids: Sequence[str], refs: Sequence[str]) -> AppendBasis:
        return AppendBasis(
            head=self.head(),
            existing=self.records_by_command(command_ids),
            keys=self.subject_keys(refs),
        )

    def insert(self, keys: Sequence[SubjectKey], records: Sequence[StoredRecord]) -> None:
        self.insert_subject_keys(keys)
        self.insert_records(records)

    def records_by_command(self, command_ids: Sequence[str]) -> dict[str, StoredRecord]:
        if not command_ids:
            return {}
        sql = f"{SELECT_RECORDS} WHERE command_id IN ({_marks(len(command_ids))})"
        return self._records_by_command(self._query(sql, command_ids))

    def _records_by_command(self, rows: Iterable[Row]) -> dict[str, StoredRecord]:
        return {r.record.command_id: r for r in map(self._record, rows)}

    def subject_keys(self, refs: Sequence[str]) -> dict[str, SubjectKey]:
        if not refs:
            return {}
        sql = f"SELECT {KEY_COLUMNS} FROM subject_keys WHERE ref IN ({_marks(len(refs))})"
        return {k.ref: k for k in map(self._key, self._query(sql, refs))}

    def insert_subject_keys(self, keys: Sequence[SubjectKey]) -> None:
        if keys:
            self.insert_rows(
                "subject_keys",
                KEY_TABLE,
                [(k.ref, k.subject, k.wrapped, self._time_in(k.created_at)) for k in keys],
            )

    def insert_records(self, records: Sequence[StoredRecord]) -> None:
        if records:
            self.insert_rows(
                "consent_records", RECORD_TABLE, [self._record_params(r) for r in records]
            )

    # -- reads -------------------------------------------------------------------------

    def iter_records(self, from_seq: int = 1) -> Iterator[StoredRecord]:
        for row in self._stream(f"{SELECT_RECORDS} WHERE seq >= ? ORDER BY seq", (from_seq,)):
            yield self._record(row)

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[Row]:
        """Rows of one query, fetched lazily where the backend can."""
        yield from self._query(sql, params)

    def record(self, seq: int) -> StoredRecord | None:
        rows = self._query(f"{SELECT_RECORDS} WHERE seq = ?", (seq,))
        return self._record(rows[0]) if rows else None

    def records_by_call(self, call_id: str, limit: int) -> list[StoredRecord]:
        sql = f"{SELECT_RECORDS} WHERE call_id = ? ORDER BY seq LIMIT ?"
        return [self._record(r) for r in self._query(sql, (call_id, limit))]

    def records_by_subject(self, subject: str, limit: int) -> list[StoredRecord]:
        sql = f"{SELECT_RECORDS} WHERE subject = ? ORDER BY seq LIMIT ?"
        return [self._record(r) for r in self._query(sql, (subject, limit))]

    def count_by_subject(self, subject: str) -> int:
        rows = self._query("SELECT COUNT(*) FROM consent_records WHERE subject = ?", (subject,))
        return int(rows[0][0])

    def subject_key(self, ref: str) -> SubjectKey | None:
        found = self.subject_keys([ref])
        return found.get(ref)

    def subject_keys_for(self, subjects: Sequence[str]) -> dict[str, SubjectKey]:
        if not subjects:
            return {}
        sql = f"SELECT {KEY_COLUMNS} FROM subject_keys WHERE subject IN ({_marks(len(subjects))})"
        return {k.subject: k for k in map(self._key, self._query(sql, subjects))}

    def delete_subject_key(self, ref: str) -> SubjectKey | None:
        sql = f"DELETE FROM subject_keys WHERE ref = ? RETURNING {KEY_COLUMNS}"
        rows = self._query(sql, (ref,))
        return self._key(rows[0]) if rows else None

    # -- checkpoints, signing keys, dead letters ----------------------------------------

    def insert_checkpoint(self, checkpoint: LedgerCheckpoint) -> None:
        self._execute(
            "INSERT INTO checkpoints (seq, head_hash, created_at, key_id, signature) "
            f"VALUES ({_marks(5)})",
            (
                checkpoint.sequence,
                checkpoint.head_hash,
                self._time_in(format_time(checkpoint.created_at)),
                checkpoint.key_id,
                checkpoint.signature,
            ),
        )

    def checkpoints(self) -> list[LedgerCheckpoint]:
        rows = self._query(
            "SELECT seq, head_hash, created_at, key_id, signature FROM checkpoints ORDER BY id"
        )
        return [self._checkpoint(r) for r in rows]

    def add_signing_key(self, key_id: str, public_key: bytes) -> None:
        self._execute(
            "INSERT INTO signing_keys (key_id, public_key) VALUES (?, ?) "
            "ON CONFLICT (key_id) DO NOTHING",
            (key_id, public_key),
        )

    def signing_keys(self) -> dict[str, bytes]:
        rows = self._query("SELECT key_id, public_key FROM signing_keys")
        return {r[0]: bytes(r[1]) for r in rows}

    def insert_dead_letter(self, letter: DeadLetter) -> int:
        rows = self._query(
            f"INSERT INTO dead_letters ({_DEAD_COLUMNS}) VALUES ({_marks(8)}) RETURNING id",
            (
                self._time_in(letter.received_at),
                letter.reason,
                letter.subject,
                letter.body_sha256,
                letter.body_size,
                letter.body_sealed,
                letter.stream_seq,
                letter.msg_id,
            ),
        )
        return int(rows[0][0])

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._query(
            f"SELECT {_DEAD_COLUMNS}, id FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            DeadLetter(
                received_at=self._time_out(r[0]),
                reason=r[1],
                subject=r[2],
                body_sha256=r[3],
                body_size=int(r[4]),
                body_sealed=bytes(r[5]),
                stream_seq=r[6],
                msg_id=r[7],
                id=int(r[8]),
            )
            for r in rows
        ]
