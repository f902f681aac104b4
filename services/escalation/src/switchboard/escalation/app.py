"""Wiring of the router process: rules, queue state, decision events and the endpoint.

``build_setup`` returns the ``setup`` that ``runtime.service.run_service`` calls. The rules
are loaded before the process connects (an invalid file stops it there), and the clock
is injectable so tests can decide "at 03:00 on a Sunday".

Each decision is published as the ``escalation.decided`` event without delaying the
reply: waiting for JetStream's ack would put a store round trip on every decision, so
the event is *written* before the reply and *acknowledged* in the background
(``EventPublisher.send``, ``Nats-Msg-Id`` = decision id, retried until stored). The event
is appended to the connection ahead of the reply, so the server stores it before the
caller can act on the decision (e.g. ask for a transfer), and many requests share one
socket write. Shutdown waits for outstanding acks and retries; only a hard kill inside
the ack window (about a millisecond) can lose an event, and the caller has its decision.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from switchboard.contracts import streams
from switchboard.contracts.base import utcnow
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.escalation import EscalationRequest, HandoffDecision
from switchboard.contracts.subjects import ESCALATION_DECIDE, request_spec
from switchboard.escalation.bucket import key_reader, open_bucket
from switchboard.escalation.queues import KvQueueState, QueueStateSource, StaticQueueState
from switchboard.escalation.reloader import RulesHolder
from switchboard.escalation.routing import decide
from switchboard.escalation.rules_file import Rules
from switchboard.escalation.settings import EscalationSettings
from switchboard.runtime.bus import EventPublisher, require_stream
from switchboard.runtime.service import (
    Cleanup,
    RequestError,
    Runtime,
    Setup,
    add_typed_endpoint,
)

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
DECIDE = request_spec(ESCALATION_DECIDE)


class DecisionHandler:
    """Answers ``sb.escalation.decide``: decide, record the event, reply."""

    def __init__(
        self,
        rules: Callable[[], Rules],
        queues: QueueStateSource,
        events: EventPublisher,
        clock: Clock = utcnow,
    ) -> None:
        self._rules = rules
        self._queues = queues
        self._events = events
        self._clock = clock

    async def on_decide(self, request: EscalationRequest) -> HandoffDecision:
        if request.attempts < 0:
            raise RequestError(
                ErrorCode.BAD_REQUEST,
                "The attempts count must not be negative.",
                field="$.attempts",
            )
        states = await self._queues.snapshot()
        decision = decide(self._rules(), request, states, self._clock())
        if log.isEnabledFor(logging.DEBUG):  # the extras cost more than the rules at load
            log.debug(
                "Decided.",
                extra={
                    "call_id": decision.call_id,
                    "target": decision.target.value,
                    "rules": [hit.rule_id for hit in decision.rules_fired],
                },
            )
        # Written before the reply; acknowledged in the background (see the module doc).
        await self._events.send(decision, decision.decision_id)
        return decision


async def queue_state_source(
    rt: Runtime, settings: EscalationSettings, holder: RulesHolder
) -> QueueStateSource:
    """KV-backed queue state when a bucket is configured, else the rules file's."""
    if not settings.queue_state_bucket:
        return StaticQueueState(holder.static_states)
    kv = await open_bucket(rt.js, settings.queue_state_bucket, settings.stream_replicas)
    return KvQueueState(key_reader(kv), holder.static_states, ttl=settings.queue_state_ttl_s)


def build_setup(rules: Rules, clock: Clock = utcnow) -> Setup:
    """The service's setup, for rules already loaded and validated."""

    async def setup(rt: Runtime) -> Cleanup:
        settings = rt.settings
        if not isinstance(settings, EscalationSettings):
            raise TypeError("The escalation router needs EscalationSettings.")
        holder = RulesHolder(rules, settings.rules_file)
        await require_stream(rt.js, streams.EVENTS)
        # A JetStream context of its own: the publisher's async acks are its alone.
        events = EventPublisher(
            rt.nc.jetstream(), timeout=settings.event_ack_timeout_s, instance=rt.instance
        )
        handler = DecisionHandler(
            holder, await queue_state_source(rt, settings, holder), events, clock
        )
        await add_typed_endpoint(rt.service, DECIDE, handler.on_decide)
        holder.start(settings.rules_reload_s)
        log.info("Rules loaded.", extra={"version": rules.version, "source": rules.source})

        async def cleanup() -> None:
            await holder.stop()
            await events.close()

        return cleanup

    return setup
