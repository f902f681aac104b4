"""Settings of the consent ledger process (environment variables ``SB_<FIELD>``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from switchboard.contracts.consent import RECEIPT_TIMEOUT_S
from switchboard.runtime.settings import ServiceSettings, SettingsError, env_name

POSTGRES_SCHEMES = ("postgresql://", "postgres://")

DEFAULT_LEDGER_DB = "var/consent/ledger.db"
DEFAULT_KEY_DIR = "var/consent"
SECRET_FILE_NAME = "ledger-secret.key"
CHECKPOINT_KEY_NAME = "checkpoint-ed25519.pem"


class ConsentSettings(ServiceSettings, kw_only=True, frozen=True):
    """Where the ledger lives, where its keys are, and how it ingests."""

    ledger_db: str = DEFAULT_LEDGER_DB
    """A SQLite file path (relative to the working directory) or a ``postgresql://`` DSN."""
    ledger_db_sslmode: str = ""
    """PostgreSQL only: the ``sslmode`` every connection uses, whatever the DSN says
    (``verify-full`` in production: encrypted, and the server's certificate must be for the
    DSN's host and from ``ledger_db_sslrootcert``). Empty: as the DSN says."""
    ledger_db_sslrootcert: str = ""
    """PostgreSQL only: the CA file that ``verify-ca``/``verify-full`` check the server with."""
    ledger_sqlite_sync: str = "full"
    """SQLite only: ``full`` fsyncs every commit (survives power loss); ``normal`` fsyncs at
    WAL checkpoints (survives a process crash, may lose the last commits on power loss)."""
    policy_file: str = ""
    """A TOML policy file; empty uses the policy shipped with the package."""
    policy_poll_s: float = 2.0
    """How often the policy file is checked for changes (SIGHUP also reloads it)."""
    ledger_secret_file: str = ""
    """32 random bytes: keys the caller hash and wraps per-caller keys. Keep it out of the DB.
    Empty: ``ledger-secret.key`` beside a SQLite ledger (``var/consent/`` for PostgreSQL)."""
    checkpoint_key_file: str = ""
    """Ed25519 private key (PKCS#8 PEM) that signs checkpoints. Empty:
    ``checkpoint-ed25519.pem`` beside a SQLite ledger (``var/consent/`` for PostgreSQL)."""
    ledger_generate_keys: bool = True
    """Create missing key files (local runs); production mounts them and sets this false."""
    checkpoint_interval_s: float = 300.0
    """A signed checkpoint is written this often when the head has moved (0 disables)."""
    checkpoint_min_interval_s: float = 60.0
    """``sb.consent.checkpoint`` signs a new checkpoint at most this often; asked again
    with nothing appended since, it answers the last one."""
    verify_concurrency: int = 1
    """How many ``sb.consent.verify`` requests run at once (each walks the whole ledger);
    more are answered ``unavailable`` at once rather than queued."""
    ingest_batch: int = 256
    """Largest number of commands appended in one database transaction."""
    consent_receipt_timeout_s: float = RECEIPT_TIMEOUT_S
    """How long the voice worker waits for a receipt (the same variable it reads): the
    ledger's redelivery after a crash (``ack_wait``) and the number of commands it holds
    at once are derived from it (``switchboard.consent.timing``)."""


def key_file(configured: str, ledger_db: str, name: str) -> Path:
    """Where a key file is: as configured, else beside a SQLite ledger, else ``var/consent``."""
    if configured:
        return Path(configured)
    if ledger_db.startswith(POSTGRES_SCHEMES):
        return Path(DEFAULT_KEY_DIR) / name
    return Path(ledger_db).parent / name


def secret_file(settings: ConsentSettings, ledger_db: str | None = None) -> Path:
    return key_file(settings.ledger_secret_file, ledger_db or settings.ledger_db, SECRET_FILE_NAME)


def checkpoint_key_file(settings: ConsentSettings, ledger_db: str | None = None) -> Path:
    db = ledger_db or settings.ledger_db
    return key_file(settings.checkpoint_key_file, db, CHECKPOINT_KEY_NAME)


def ledger_dsn(settings: ConsentSettings) -> str:
    """``ledger_db`` with the TLS settings applied: the manifest, not whoever wrote the
    DSN into a Secret, decides how the ledger's connections are protected."""
    db = settings.ledger_db
    tls = {"sslmode": settings.ledger_db_sslmode, "sslrootcert": settings.ledger_db_sslrootcert}
    tls = {key: value for key, value in tls.items() if value}
    if not tls:
        return db
    if not db.startswith(POSTGRES_SCHEMES):
        raise SettingsError(
            f"{env_name('ledger_db_sslmode')} and {env_name('ledger_db_sslrootcert')} apply "
            f"to a PostgreSQL ledger only; {env_name('ledger_db')} is not a postgresql:// DSN."
        )
    parts = urlsplit(db)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in tls]
    return urlunsplit(parts._replace(query=urlencode([*query, *tls.items()])))
