"""Helpers for the consent service tests that talk to a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo, DeliverPolicy

from switchboard.consent import __version__
from switchboard.consent.app import make_setup, policy_source
from switchboard.consent.policy_source import PolicySource
from switchboard.consent.settings import ConsentSettings
from switchboard.contracts import streams
from switchboard.contracts.consent import ConsentPolicy, ConsentPolicyQuery, RecordConsent
from switchboard.contracts.envelope import CloudEvent, decode_event
from switchboard.contracts.subjects import CONSENT_POLICY, Owner, consent_record_subject
from switchboard.runtime.bus import RequestFailed, request
from switchboard.runtime.service import run_service
from switchboard.testing import eventually


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
    policy: PolicySource


async def wait_ready(nc: NATS, timeout: float = 10.0) -> None:
    """Until the service reports ``ready`` in ``$SRV.INFO`` (its whole setup ran: the
    endpoints, the ledger's consumer, the SIGHUP handler) and the policy endpoint answers."""
    js = nc.jetstream()

    async def ready() -> bool:
        reply = await nc.request("$SRV.INFO.consent", b"", timeout=0.5)
        state = (json.loads(reply.data).get("metadata") or {}).get("state")
        assert state == "ready", f"state {state}"
        await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="ping"), ConsentPolicy, 0.5)
        await js.consumer_info(streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER)
        return True

    await eventually(
        ready,
        timeout=timeout,
        message="the consent service to be ready",
        retry_on=(
            AssertionError,
            RequestFailed,
            nats.errors.NoRespondersError,
            nats.errors.TimeoutError,
            nats.js.errors.NotFoundError,
        ),
    )


async def drained(js: JetStreamContext, timeout: float = 10.0) -> ConsumerInfo:
    """The ledger consumer's info once every command was delivered and acknowledged.

    The ledger acknowledges a command only after the stream stored its receipts (or after
    dead-lettering it), so from then on the ledger and the events stream are final.
    """

    async def info() -> ConsumerInfo:
        found: ConsumerInfo = await js.consumer_info(
            streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER
        )
        assert (found.num_pending, found.num_ack_pending) == (0, 0), (
            f"pending {found.num_pending}, awaiting ack {found.num_ack_pending}"
        )
        return found

    return await eventually(
        info, timeout=timeout, message="the ledger consumer to acknowledge every command"
    )


@contextlib.asynccontextmanager
async def running(settings: ConsentSettings, nc: NATS) -> AsyncIterator[RunningService]:
    """The consent service in this process, until the block ends."""
    stop = asyncio.Event()
    policy = policy_source(settings)
    setup = make_setup(settings, policy)
    task = asyncio.create_task(
        run_service(Owner.CONSENT.value, __version__, settings, setup, stop=stop)
    )
    try:
        await wait_ready(nc)
        yield RunningService(settings, stop, task, policy)
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
    """Every event in the events stream under ``wildcard``, in stream order.

    The read ends when the consumer has nothing left to deliver (its pending count, and
    each message's count of those after it), never on a silence.
    """
    psub = await js.pull_subscribe(
        wildcard,
        stream=streams.EVENTS.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0),
    )
    out: list[tuple[CloudEvent, Any]] = []
    try:
        left = (await psub.consumer_info()).num_pending
        while left:
            batch = await psub.fetch(min(left, 500), timeout=5)
            for msg in batch:
                out.append(decode_event(msg.data))
                await msg.ack()
            left = batch[-1].metadata.num_pending
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
