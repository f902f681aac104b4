"""Helpers for the consent service tests that talk to a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from switchboard.consent import __version__
from switchboard.consent.app import make_setup, policy_source
from switchboard.consent.settings import ConsentSettings
from switchboard.contracts import streams
from switchboard.contracts.consent import ConsentPolicy, ConsentPolicyQuery, RecordConsent
from switchboard.contracts.envelope import CloudEvent, decode_event
from switchboard.contracts.subjects import CONSENT_POLICY, Owner, consent_record_subject
from switchboard.runtime.bus import RequestFailed, request
from switchboard.runtime.service import run_service


def settings_for(nats_url: str, root: Path, **overrides: Any) -> ConsentSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "ledger_db": str(root / "ledger.db"),
        "ledger_secret_file": str(root / "secret.key"),
        "checkpoint_key_file": str(root / "checkpoint.pem"),
        "checkpoint_interval_s": 0.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return ConsentSettings(**values)


def env_for(settings: ConsentSettings) -> dict[str, str]:
    """The environment that makes a subprocess load ``settings``."""
    out: dict[str, str] = {}
    for name in msgspec.structs.fields(ConsentSettings):
        value = getattr(settings, name.name)
        if value is not None:
            out[f"SB_{name.name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    return out


@dataclass
class RunningService:
    settings: ConsentSettings
    stop: asyncio.Event
    task: asyncio.Task[None]


async def wait_ready(nc: NATS, timeout: float = 10.0) -> None:
    """Until the policy endpoint answers and the ledger's consumer exists."""
    js = nc.jetstream()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await request(
                nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="ping"), ConsentPolicy, 0.5
            )
            await js.consumer_info(streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER)
            return
        except (RequestFailed, nats.js.errors.NotFoundError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(settings: ConsentSettings, nc: NATS) -> AsyncIterator[RunningService]:
    """The consent service in this process, until the block ends."""
    stop = asyncio.Event()
    setup = make_setup(settings, policy_source(settings))
    task = asyncio.create_task(
        run_service(Owner.CONSENT.value, __version__, settings, setup, stop=stop)
    )
    try:
        await wait_ready(nc)
        yield RunningService(settings, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def publish(js: JetStreamContext, command: RecordConsent, msg_id: str | None = None) -> None:
    await js.publish(
        consent_record_subject(command.call_id),
        msgspec.json.encode(command),
        headers={"Nats-Msg-Id": msg_id or command.command_id},
    )


async def stored_events(
    js: JetStreamContext, wildcard: str = "sb.evt.consent.>"
) -> list[tuple[CloudEvent, Any]]:
    """Every event in the events stream under ``wildcard``, in stream order."""
    psub = await js.pull_subscribe(
        wildcard,
        stream=streams.EVENTS.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0),
    )
    out: list[tuple[CloudEvent, Any]] = []
    try:
        while True:
            try:
                batch = await psub.fetch(500, timeout=0.5)
            except TimeoutError:  # nats' own and asyncio's
                break
            for msg in batch:
                out.append(decode_event(msg.data))
                await msg.ack()
    finally:
        await psub.unsubscribe()
    return out


@dataclass
class EventWaiter:
    """Collects consent events from a core subscription."""

    events: list[tuple[CloudEvent, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Any) -> None:
        self.events.append(decode_event(msg.data))
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[CloudEvent, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < count:
            self.arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"got {len(self.events)} of {count} events")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return self.events


async def subscribe_events(nc: NATS, wildcard: str = "sb.evt.consent.>") -> EventWaiter:
    waiter = EventWaiter()
    await nc.subscribe(wildcard, cb=waiter.on_msg)
    return waiter
