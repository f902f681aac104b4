"""Fixtures for the relay's tests: a real HTTP receiver, an endpoints file with a fresh
secret, the relay in-process on the test's nats-server, and events on SB_EVENTS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NATS

from switchboard.contracts import streams
from switchboard.contracts.base import Message
from switchboard.contracts.call import AgentHandedOff
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher, ensure_stream
from switchboard.runtime.service import run_service
from switchboard.testing import eventually
from switchboard.webhook_relay.app import build_setup
from switchboard.webhook_relay.endpoints import load_endpoints
from switchboard.webhook_relay.settings import RelaySettings
from switchboard.webhook_relay.signing import new_secret

# The relay's tests share helpers in relay_testkit.py (a unique module name).
sys.path.insert(0, str(Path(__file__).parent))
from relay_testkit import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    try:
        yield started
    finally:
        await started.stop()


@dataclass
class Config:
    """An endpoints file for one endpoint named ``crm`` pointing at the receiver."""

    dir: Path
    secret: str
    url: str
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, **extra: Any) -> Path:
        secret_file = self.dir / "crm.secret"
        secret_file.write_text(self.secret + "\n")
        fields = {"name": "crm", "url": self.url, "secret_file": str(secret_file), **extra}
        lines = ["[[endpoints]]"] + [f"{k} = {json.dumps(v)}" for k, v in fields.items()]
        path = self.dir / "endpoints.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def config(tmp_path: Path, receiver: Receiver) -> Config:
    return Config(tmp_path, new_secret(), receiver.url)


def relay_settings(nats_server: NatsServer, endpoints: Path, **overrides: Any) -> RelaySettings:
    values: dict[str, Any] = {
        "nats_url": nats_server.url,
        "webhook_endpoints_file": str(endpoints),
        "webhook_timeout_s": 2.0,
        "webhook_retry_initial_s": 0.02,
        "webhook_retry_max_s": 0.2,
        "webhook_give_up_s": 30.0,
        "webhook_ack_wait_s": 3.0,
        **overrides,
    }
    return msgspec.convert(values, RelaySettings)


StartRelay = Callable[..., Awaitable[None]]


@pytest.fixture
async def start_relay(nats_server: NatsServer, nc: NATS) -> AsyncIterator[StartRelay]:
    """Run the relay service in this process until the test ends."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(endpoints: Path, **overrides: Any) -> None:
        settings = relay_settings(nats_server, endpoints, **overrides)
        parsed = load_endpoints(settings.webhook_endpoints_file, settings.webhook_give_up_s)
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_service(
                "webhook-relay", "0.0.1", settings, build_setup(parsed, settings), stop=stop
            )
        )
        stops.append((stop, task))

        async def ready() -> bool:
            try:
                reply = await nc.request("$SRV.INFO.webhook-relay", b"", timeout=0.5)
            except Exception:
                return False
            return bool(json.loads(reply.data).get("metadata", {}).get("state") == "ready")

        await eventually(ready, message="the relay to be ready", timeout=10)

    yield start
    for stop, task in stops:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def publisher(nc: NATS) -> EventPublisher:
    js = nc.jetstream()
    await ensure_stream(js, streams.EVENTS)
    return EventPublisher(js)


def step(call_id: str, n: int) -> Message:
    """The n-th event of a call (its order is in ``reason``)."""
    return AgentHandedOff(call_id=call_id, from_agent="a", to_agent="b", reason=f"step-{n}")
