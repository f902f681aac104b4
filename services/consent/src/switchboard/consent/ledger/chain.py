"""The hash chain: the canonical encoding of a ledger record and how records are linked.

``hash_n = SHA-256(canonical(record_n) || hash_{n-1})`` with ``hash_0`` = 32 zero bytes.
The canonical encoding is a fixed prefix and a JSON object with sorted keys, no
whitespace, UTF-8 strings, bytes in base64 and times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``,
so anyone can re-implement the check from this description. The sequence is part of the
record, so moving a record to another place breaks its hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Final

import msgspec

GENESIS: Final = bytes(32)
"""The "previous hash" of the first record."""
CANONICAL_PREFIX: Final = b"switchboard-consent-record-v1\n"
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")

_encoder = msgspec.json.Encoder(order="sorted")
_time_encoder = msgspec.json.Encoder()


class ChainRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The chained fields of one record, exactly as stored.

    Personal data is only in ``sealed`` (encrypted with the caller's key) and ``subject``
    is a random pseudonym, so destroying the key leaves this record, and the chain, intact.
    """

    seq: int
    command_id: str
    call_id: str
    decision: str
    jurisdiction: str
    mode: str
    notice_version: str
    language: str
    source: str
    decided_at: str
    recorded_at: str
    subject: str | None = None
    sealed: bytes | None = None


class StoredRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A record with its links: the previous record's hash and its own."""

    record: ChainRecord
    prev_hash: bytes
    hash: bytes

    @property
    def seq(self) -> int:
        return self.record.seq


def canonical(record: ChainRecord) -> bytes:
    """The bytes that are hashed for ``record``."""
    return CANONICAL_PREFIX + _encoder.encode(record)


def chain_hash(record: ChainRecord, prev_hash: bytes) -> bytes:
    """The hash of ``record`` chained after a record whose hash is ``prev_hash``."""
    return hashlib.sha256(canonical(record) + prev_hash).digest()


def link(record: ChainRecord, prev_hash: bytes) -> StoredRecord:
    """``record`` chained after ``prev_hash``."""
    return StoredRecord(record=record, prev_hash=prev_hash, hash=chain_hash(record, prev_hash))


def format_time(value: dt.datetime) -> str:
    """The canonical text of a time (UTC, microseconds); naive times are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    elif value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    if value.microsecond and value.year >= 1000:
        # msgspec writes exactly this text (RFC 3339, six digits, "Z") 15x faster than
        # strftime; it drops the fraction when it is zero and pads years below 1000,
        # where strftime's text is kept.
        return _time_encoder.encode(value)[1:-1].decode()
    return value.strftime(TIME_FORMAT)


def parse_time(text: str) -> dt.datetime:
    """The time a canonical text stands for (timezone-aware UTC)."""
    if _CANONICAL_TIME.fullmatch(text):
        # fromisoformat is C (strptime is pure Python, ~50x slower); the pattern keeps
        # the accepted texts exactly those of TIME_FORMAT.
        return dt.datetime.fromisoformat(text)
    return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)
