"""Cross-service fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
