"""Find or start a PostgreSQL server for tests.

Order: ``SB_TEST_POSTGRES_DSN``; the server on 127.0.0.1:5432 (database ``test``) when it
answers; a throwaway cluster from the local PostgreSQL binaries; otherwise the caller
skips — except under ``CI=true``, where a missing database fails the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from switchboard.testing.certs import TlsFiles

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        for version in sorted(root.iterdir(), reverse=True):
            if (version / "bin" / "initdb").exists():
                return version / "bin"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str | None]:
    """Start a private cluster; yields its DSN, or None when no binaries are installed."""
    bindir = _bindir()
    if bindir is None:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="sb-pg-"))
    data = tmp / "data"
    port = _free_port()
    # initdb refuses to run as root; run the server as the postgres user then.
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp, "postgres")
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -k {tmp}",
                "-l",
                str(tmp / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 10
        while not reachable(dsn) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield dsn
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)


class PostgresError(RuntimeError):
    """No PostgreSQL binaries, or the server did not start."""


@contextlib.contextmanager
def tls_server(
    *, host: str, port: int, tls: TlsFiles, user: str, password: str, database: str
) -> Iterator[str]:
    """A throwaway PostgreSQL on ``host``:``port`` that accepts only TLS with a password
    (``hostssl`` and SCRAM, no plain ``host`` lines) for ``user``, who owns ``database``.

    ``tls`` is the server's certificate and key. Yields the ``verify-full`` DSN; the caller
    resolves ``tls``'s host name to ``host`` for the name check to pass.
    """
    bindir = _bindir()
    if bindir is None:
        raise PostgresError("No PostgreSQL binaries (initdb) on this machine.")
    tmp = Path(tempfile.mkdtemp(prefix="sb-pg-tls-"))
    data = tmp / "data"
    prefix: list[str] = []
    # The server refuses a key file others can read, and must own it.
    cert, key = tmp / "server.crt", tmp / "server.key"
    shutil.copyfile(tls.cert, cert)
    shutil.copyfile(tls.key, key)
    key.chmod(0o600)
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        for path in (tmp, cert, key):
            shutil.chown(path, "postgres")
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
        )
        # The superuser over the local socket only (to create the role); TCP: TLS + SCRAM.
        (data / "pg_hba.conf").write_text(
            "local all postgres trust\nhostssl all all 0.0.0.0/0 scram-sha-256\n"
        )
        options = (
            f"-c listen_addresses={host} -p {port} -k {tmp} -c ssl=on "
            f"-c ssl_cert_file={cert} -c ssl_key_file={key} "
            "-c password_encryption=scram-sha-256"
        )
        pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options]
        started = subprocess.run(
            [*pg_ctl, "-l", str(tmp / "log"), "-w", "start"],
            capture_output=True,
            check=False,
        )
        if started.returncode != 0:
            log = (tmp / "log").read_text(errors="replace") if (tmp / "log").exists() else ""
            raise PostgresError(f"PostgreSQL did not start: {log[-2000:]}")
        with psycopg.connect(host=str(tmp), port=port, user="postgres", autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(user)
                )
            )
        yield f"postgresql://{user}:{password}@{host}:{port}/{database}?sslmode=verify-full"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def fresh_schema(server_dsn: str, prefix: str = "t") -> Iterator[str]:
    """A DSN whose ``search_path`` is a new schema, dropped with everything in it afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in server_dsn else "?"
    try:
        yield f"{server_dsn}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
