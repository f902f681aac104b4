"""Pytest plugin: a real nats-server per test, a PostgreSQL server per session and a
scripted OpenAI-compatible server per test.

Registered through the ``pytest11`` entry point of ``switchboard-testing``, so every
package's tests get these fixtures without a conftest.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import nats
import pytest
from nats.aio.client import Client as NATS

from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.provision import provision
from switchboard.testing import postgres
from switchboard.testing.crm import RunningCrm, start_demo_crm
from switchboard.testing.fake_backends import Backends, start_backends

if TYPE_CHECKING:
    from switchboard.testing.openai_server import OpenAIServer


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream on a free port and a temporary store, its
    streams provisioned as the provisioning step does before services start."""
    server = NatsServer().start()
    try:
        asyncio.run(provision_streams(server.url))
        yield server
    finally:
        server.stop()


async def provision_streams(url: str) -> None:
    """Create every stream on the server at ``url`` (``runtime.provision``)."""
    client = await nats.connect(url, connect_timeout=2)
    try:
        await provision(client.jetstream())
    finally:
        await client.close()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    """A client connected to the test's own server."""
    client = await nats.connect(nats_server.url, connect_timeout=2)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def backends(nc: NATS) -> AsyncIterator[Backends]:
    """In-memory stand-ins for the ledger, the router and the sip-bridge on the test's
    server (``fake_backends``)."""
    started = await start_backends(nc)
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def demo_crm(nc: NATS) -> AsyncIterator[RunningCrm]:
    """The demo CRM's handlers and data on the test's server (``switchboard.testing.crm``)."""
    running = await start_demo_crm(nc)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="session")
def postgres_server_dsn() -> Iterator[str]:
    """DSN of a reachable PostgreSQL server; fails (never skips) when CI=true."""
    dsn = os.environ.get("SB_TEST_POSTGRES_DSN", postgres.DEFAULT_DSN)
    if postgres.reachable(dsn):
        yield dsn
        return
    with postgres.throwaway_cluster() as started:
        if started is not None and postgres.reachable(started):
            yield started
            return
    reason = f"No PostgreSQL server: {dsn} does not answer and no local binaries could start one."
    if in_ci():
        pytest.fail(reason + " CI=true, so this is a failure, not a skip.")
    pytest.skip(reason)


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """A DSN whose ``search_path`` is a fresh schema, dropped after the test."""
    with postgres.fresh_schema(postgres_server_dsn) as dsn:
        yield dsn


@pytest.fixture
async def openai_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpenAIServer]:
    """A started ``OpenAIServer`` on 127.0.0.1 with no chat policy yet (the test sets
    ``openai_server.policy``). ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` point at it, so an
    openai client made without arguments never reaches the real API. At teardown the test
    fails if a policy failed or a request was refused (``OpenAIServer.check``)."""
    # Imported here so test sessions that never use it do not import aiohttp.web.
    from switchboard.testing.openai_server import OpenAIServer

    server = await OpenAIServer().start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        await server.stop()
    server.check()
