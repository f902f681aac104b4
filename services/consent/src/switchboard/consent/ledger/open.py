"""Choose the backend from the ``--db``/``SB_LEDGER_DB`` value: a DSN or a file path."""

from __future__ import annotations

from switchboard.consent.ledger.store import LedgerStore
from switchboard.consent.settings import POSTGRES_SCHEMES


def is_postgres(db: str) -> bool:
    return db.startswith(POSTGRES_SCHEMES)


def open_store(db: str, create: bool = True, sqlite_sync: str = "full") -> LedgerStore:
    """Open (and with ``create``, initialise) the ledger database named by ``db``."""
    if is_postgres(db):
        from switchboard.consent.ledger.postgres import PostgresStore

        return PostgresStore(db, create=create)
    from switchboard.consent.ledger.sqlite import SqliteStore

    return SqliteStore(db, create=create, synchronous=sqlite_sync)


def describe(db: str) -> str:
    """``db`` safe to log: a DSN loses its user info (passwords)."""
    if is_postgres(db):
        scheme, _, rest = db.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"
    return db
