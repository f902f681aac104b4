"""The ledger through a PostgreSQL outage: it answers ``unavailable``, logs the outage
once, backs off, and resumes by itself when the database is back (issue 7)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from consent_testkit import drained, publish, running, settings_for, subscribe_events
from nats.aio.client import Client as NATS
from psycopg import sql

from switchboard.contracts.consent import ConsentRecords, LookupConsent, RecordConsent
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.subjects import CONSENT_LOOKUP
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import RequestFailed, request
from switchboard.testing import eventually

Command = Callable[..., RecordConsent]


@contextlib.contextmanager
def dedicated_database(server_dsn: str) -> Iterator[tuple[str, str]]:
    """A database of its own (name, DSN), so cutting its connections disturbs no other
    test; dropped afterwards."""
    name = f"sb_outage_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(server_dsn)
    try:
        yield name, urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def cut(server_dsn: str, name: str) -> int:
    """Refuse new connections to ``name`` and terminate the ones it has; how many."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def restore(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
        )


async def test_a_database_outage_answers_unavailable_logs_once_and_ingest_resumes_by_itself(
    nats_server: NatsServer,
    nc: NATS,
    tmp_path: Path,
    command: Command,
    postgres_server_dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 2 (issue 7): the store held one connection for the process's life; after
    the database dropped it every append failed with a traceback every 10 ms, lookups
    answered ``internal`` and ingest resumed only on a restart."""
    with dedicated_database(postgres_server_dsn) as (name, dsn):
        settings = settings_for(nats_server.url, tmp_path, ledger_db=dsn, log_level="INFO")
        async with running(settings, nc):
            js = nc.jetstream()
            waiter = await subscribe_events(nc)
            await publish(js, command(call_id="before-outage"))
            await waiter.wait_for(1)
            capsys.readouterr()  # the outage's log starts here

            assert cut(postgres_server_dsn, name) >= 1
            try:
                during = command(call_id="during-outage")
                await publish(js, during)

                async def unavailable() -> bool:
                    with pytest.raises(RequestFailed) as failed:
                        await request(
                            nc,
                            CONSENT_LOOKUP,
                            LookupConsent(call_id="before-outage"),
                            ConsentRecords,
                            2,
                        )
                    assert failed.value.error.code is ErrorCode.UNAVAILABLE
                    return True

                await eventually(unavailable, message="lookups to answer unavailable")

                async def retried() -> bool:
                    info = await js.consumer_info("SB_CONSENT_CMDS", "consent-ledger")
                    return bool(info.num_redelivered) and bool(info.num_ack_pending)

                # Ingest took the command, could not append it, handed it back, took it
                # again: it is retrying, not stuck and not lost.
                await eventually(retried, timeout=15, message="the command to be retried")
                outage_log = capsys.readouterr().err.splitlines()
            finally:
                restore(postgres_server_dsn, name)

            [(_, recorded)] = (await waiter.wait_for(2, timeout=20))[1:]
            assert recorded.command_id == during.command_id
            await drained(js)
            records = await request(
                nc, CONSENT_LOOKUP, LookupConsent(call_id="during-outage"), ConsentRecords, 2
            )
            assert len(records.records) == 1

        lines = [json.loads(line) for line in outage_log if line.startswith("{")]
        down = [line for line in lines if "unreachable" in line["message"]]
        assert len(down) == 1, down  # once per outage, not once per attempt
        assert not [line for line in lines if line["level"] == "ERROR"], lines
        assert len(lines) < 20, lines
        after = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
        assert any("reachable again" in line["message"] for line in after), after
