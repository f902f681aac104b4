"""Wiring of the relay process: the HTTP session, one ``EndpointRelay`` per endpoint, the
dead-letter store, and the operators' requests (``sb.webhook.deadletter.list|replay``)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from switchboard.contracts import streams
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.subjects import WEBHOOK_DEAD_LETTERS, WEBHOOK_REPLAY, request_spec
from switchboard.contracts.webhook import (
    DeadLetters,
    DeadLettersReplayed,
    ListDeadLetters,
    ReplayDeadLetters,
)
from switchboard.runtime.bus import require_stream
from switchboard.runtime.service import Cleanup, RequestError, Runtime, Setup, add_typed_endpoint
from switchboard.webhook_relay.deadletters import DeadLetterStore
from switchboard.webhook_relay.delivery import Poster
from switchboard.webhook_relay.endpoint import EndpointRelay, ReplayReport
from switchboard.webhook_relay.endpoints import Endpoint
from switchboard.webhook_relay.settings import RelaySettings

log = logging.getLogger(__name__)

REPLAY_TIMEOUT_S = 50.0
"""How long a replay request waits for its deliveries (the CLI waits a little longer)."""


class Relay:
    """Every endpoint's relay and the dead letters they share."""

    def __init__(self, relays: dict[str, EndpointRelay], dead: DeadLetterStore) -> None:
        self.relays = relays
        self.dead = dead

    async def on_list(self, query: ListDeadLetters) -> DeadLetters:
        self._known(query.endpoint)
        kept = [
            k.view
            for k in self.dead.all()
            if query.endpoint in (None, k.view.endpoint) and query.call_id in (None, k.view.call_id)
        ]
        return DeadLetters(dead_letters=kept[: query.limit], total=len(kept))

    async def on_replay(self, command: ReplayDeadLetters) -> DeadLettersReplayed:
        self._known(command.endpoint)
        waits: list[asyncio.Future[ReplayReport]] = []
        for name, relay in self.relays.items():
            if command.endpoint not in (None, name):
                continue
            for call_id in self.dead.calls(name):
                if command.call_id not in (None, call_id):
                    continue
                if command.event_id is not None and command.event_id not in {
                    k.view.event_id for k in self.dead.of_call(name, call_id)
                }:
                    continue
                waits.append(relay.replay(call_id, command.event_id))
        try:
            reports = await asyncio.wait_for(asyncio.gather(*waits), REPLAY_TIMEOUT_S)
        except TimeoutError:
            raise RequestError(
                ErrorCode.UNAVAILABLE,
                "The replay is still running; list the dead letters to see what is left.",
            ) from None
        return DeadLettersReplayed(
            delivered=sum(r.delivered for r in reports),
            failed=[f for r in reports for f in r.failed],
            left=sum(r.left for r in reports),
        )

    def _known(self, endpoint: str | None) -> None:
        if endpoint is not None and endpoint not in self.relays:
            raise RequestError(
                ErrorCode.NOT_FOUND, f"No endpoint named {endpoint} is configured.", "$.endpoint"
            )


def build_setup(endpoints: list[Endpoint], settings: RelaySettings) -> Setup:
    async def setup(rt: Runtime) -> Cleanup:
        # Like every service, check the streams it reads and writes exist (provisioned).
        await require_stream(rt.js, streams.EVENTS)
        dead = await DeadLetterStore(rt.js).open()
        session = aiohttp.ClientSession()
        poster = Poster(
            session,
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
        )
        relays = {e.name: EndpointRelay(rt.js, e, settings, poster, dead) for e in endpoints}
        relay = Relay(relays, dead)
        await add_typed_endpoint(rt.service, request_spec(WEBHOOK_DEAD_LETTERS), relay.on_list)
        await add_typed_endpoint(rt.service, request_spec(WEBHOOK_REPLAY), relay.on_replay)
        try:
            for r in relays.values():
                await r.start(rt.keep)
        except BaseException:
            await session.close()
            raise
        log.info("Relaying.", extra={"endpoints": sorted(relays)})

        async def cleanup() -> None:
            for r in relays.values():
                await r.stop()
            await session.close()

        return cleanup

    return setup
