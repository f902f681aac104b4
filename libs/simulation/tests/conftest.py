"""Fixtures for the simulation's tests: in-test backends on a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard.devstack.natsserver import NatsServer
from switchboard.simulation.settings import SimulationSettings
from switchboard.testing import fake_backends
from switchboard.voice.wiring import Bus, open_bus


@pytest.fixture(autouse=True)
async def _stop_fakes() -> AsyncIterator[None]:
    """Fakes started inside a test are stopped before its NATS connection closes."""
    yield
    await fake_backends.stop_all()


@pytest.fixture
def settings(nats_server: NatsServer) -> SimulationSettings:
    return SimulationSettings(
        nats_url=nats_server.url,
        consent_policy_timeout_s=0.5,
        consent_receipt_timeout_s=1.0,
        router_timeout_s=0.5,
        transfer_place_timeout_s=0.5,
        transfer_answer_timeout_s=5.0,
        transfer_connect_grace_s=0.3,
    )


@pytest.fixture
async def bus(settings: SimulationSettings) -> AsyncIterator[Bus]:
    opened = await open_bus(settings)
    try:
        yield opened
    finally:
        await opened.close()
