"""Everything published on the bus about one call (``sb.evt.*.*.<call_id>``), in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from switchboard.contracts.envelope import decode_envelope
from switchboard.contracts.subjects import call_events_wildcard

_TYPE_PREFIX = "io.switchboard."


@dataclass(frozen=True, slots=True)
class ObservedEvent:
    kind: str
    """``<domain>.<name>``, e.g. ``consent.recorded``."""
    type: str
    source: str
    time: str
    data: dict[str, Any]
    at_s: float


def short_kind(event_type: str) -> str:
    """``io.switchboard.consent.recorded.v1`` → ``consent.recorded``."""
    body = event_type.removeprefix(_TYPE_PREFIX)
    return body.rsplit(".", 1)[0] if body.rsplit(".", 1)[-1].startswith("v") else body


class CallObserver:
    """Subscribes before the call starts (on the connection the call uses) and keeps every
    event of that call."""

    def __init__(
        self, on_event: Callable[[ObservedEvent], None] | None = None, t0: float | None = None
    ) -> None:
        self.events: list[ObservedEvent] = []
        self._on_event = on_event
        self._sub: Subscription | None = None
        self._t0 = time.monotonic() if t0 is None else t0
        """Events are timed from this moment (the call's transcript uses the same)."""
        self._arrived = asyncio.Event()

    async def start(self, nc: NATS, call_id: str) -> CallObserver:
        # No flush: the server takes a connection's commands in order, so the subscription
        # stands before anything the call sends on this connection (and so before what the
        # services do about it). A flush would wait out a restarting or stalled server, and
        # nats-py's read loop dies on the PONG of a flush that timed out.
        self._sub = await nc.subscribe(call_events_wildcard(call_id), cb=self._on_msg)
        return self

    async def _on_msg(self, msg: Msg) -> None:
        try:
            envelope = decode_envelope(msg.data)
            data = msgspec.json.decode(envelope.data)
        except msgspec.DecodeError:
            return
        event = ObservedEvent(
            kind=short_kind(envelope.type),
            type=envelope.type,
            source=envelope.source,
            time=envelope.time.isoformat(),
            data=data if isinstance(data, dict) else {"value": data},
            at_s=round(time.monotonic() - self._t0, 3),
        )
        self.events.append(event)
        self._arrived.set()
        if self._on_event is not None:
            self._on_event(event)

    def of_kind(self, kind: str) -> list[ObservedEvent]:
        """The events of one kind seen so far, in order."""
        return [e for e in self.events if e.kind == kind]

    async def wait_for(self, kind: str, timeout: float) -> bool:
        """Wait until an event of ``kind`` has been seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(e.kind == kind for e in self.events):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
