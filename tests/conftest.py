"""Cross-service fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.testing.tools import require
from tests.conformance import install_node_checks
from tests.stack import Stack, start_stack


def _run(running: Stack) -> Iterator[Stack]:
    try:
        yield running
    finally:
        codes = {name: proc.stop() for name, proc in running.services.items()}
        running.nats.stop()
        # A clean SIGTERM drain exits 0; anything else is a shutdown bug worth seeing.
        assert all(code == 0 for code in codes.values()), (codes, running.logs())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """NATS and the backend services, started through their entry points."""
    yield from _run(start_stack(tmp_path_factory.mktemp("stack")))


@pytest.fixture(scope="module")
def secured_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same with NATS permissions on: every process connects as its own user."""
    yield from _run(start_stack(tmp_path_factory.mktemp("secured-stack"), permissions_on=True))


@pytest.fixture(scope="session")
def node_checks(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``node`` and a folder where ``tests/node`` is installed (``npm ci``, once a run)."""
    why = "the Node tools (Ajv strict, CloudEvents JS, AsyncAPI parser) check the contracts"
    node = require("node", why)
    npm = require("npm", why)
    return node, install_node_checks(tmp_path_factory.mktemp("node-checks"), npm)
