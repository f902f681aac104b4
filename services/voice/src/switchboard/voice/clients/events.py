"""Publishing the voice worker's own call events (CloudEvents on JetStream).

A failed publish is logged and swallowed: losing the bus must never cut a caller off,
and every event carries its own id so a later retry would be de-duplicated by the stream.
"""

from __future__ import annotations

import logging
from typing import Protocol

from nats.js import JetStreamContext

from switchboard.contracts.base import Message
from switchboard.contracts.envelope import spec_for
from switchboard.runtime.bus import EventPublisher

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where call events go; tests may collect them in memory."""

    async def publish(self, payload: Message) -> str | None: ...


class CallEvents:
    """Publishes call, agent, callback and recording events; never raises."""

    def __init__(self, js: JetStreamContext, source: str, timeout: float = 2.0) -> None:
        self._publisher = EventPublisher(js, source=source, timeout=timeout)

    async def publish(self, payload: Message) -> str | None:
        event_type = spec_for(type(payload)).type
        try:
            return await self._publisher.publish(payload)
        except Exception as exc:
            log.warning(
                "Could not publish a call event; the call goes on.",
                extra={"event_type": event_type, "error": type(exc).__name__},
            )
            return None
