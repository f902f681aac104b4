"""Consent ledger client: the policy for a caller, and recording a decision with its receipt.

A decision is a JetStream command (``Nats-Msg-Id`` = ``command_id``, so a retried publish
is applied once); the proof is the ledger's ``ConsentRecorded`` event, which we wait for
on the call's consent events. We subscribe before publishing, on the same connection, so
a fast ledger cannot answer before we listen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from switchboard.contracts.consent import (
    ConsentMode,
    ConsentPolicy,
    ConsentPolicyQuery,
    ConsentRecorded,
    ConsentRevoked,
    RecordConsent,
)
from switchboard.contracts.envelope import MalformedEvent, read_event
from switchboard.contracts.subjects import CONSENT_POLICY, EVENTS_PREFIX, consent_record_subject
from switchboard.runtime import telemetry
from switchboard.runtime.bus import MSG_ID_HEADER, RequestFailed, request

log = logging.getLogger(__name__)

FALLBACK_NOTICE_VERSION: Final = "voice-fallback-1"
FALLBACK_DISCLOSURE: Final = "You're speaking with an automated AI assistant."
FALLBACK_NOTICE: Final = "We'd like to record this call for quality and training purposes."

ConsentEvent = ConsentRecorded | ConsentRevoked
_encoder = msgspec.json.Encoder()


def strictest_policy(query: ConsentPolicyQuery) -> ConsentPolicy:
    """The policy used when the ledger does not answer: ask, as all-party places require."""
    return ConsentPolicy(
        call_id=query.call_id,
        jurisdiction="unknown",
        mode=ConsentMode.ASK,
        notice_text=FALLBACK_NOTICE,
        notice_version=FALLBACK_NOTICE_VERSION,
        ai_disclosure=FALLBACK_DISCLOSURE,
        language=query.language,
        fallback=True,
    )


def consent_events_subject(call_id: str) -> str:
    """Every consent event (recorded, revoked) of one call."""
    return f"{EVENTS_PREFIX}.consent.*.{call_id}"


class ConsentClient:
    """Asks the ledger for policies and records decisions, with timeouts and fallbacks."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        *,
        policy_timeout: float = 1.0,
        receipt_timeout: float = 3.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self._policy_timeout = policy_timeout
        self._receipt_timeout = receipt_timeout

    async def policy(self, query: ConsentPolicyQuery) -> ConsentPolicy:
        """The caller's policy, or the strictest one (``fallback=True``) if the ledger fails."""
        try:
            policy: ConsentPolicy = await request(
                self._nc, CONSENT_POLICY, query, ConsentPolicy, self._policy_timeout
            )
        except RequestFailed as exc:
            log.warning(
                "Consent policy unavailable; using the strictest policy.",
                extra={"call_id": query.call_id, "code": str(exc.error.code)},
            )
            return strictest_policy(query)
        return policy

    async def record(self, command: RecordConsent) -> ConsentEvent | None:
        """Publish the decision and wait for its receipt; ``None`` if none came in time."""
        receipt: asyncio.Future[ConsentEvent] = asyncio.get_running_loop().create_future()

        async def on_event(msg: Msg) -> None:
            event = _decode(msg.data)
            if event is not None and event.command_id == command.command_id and not receipt.done():
                receipt.set_result(event)

        sub = None
        try:
            # One deadline for all of it, so the caller waits at most this long after their
            # answer whatever the bus does (the publish and the receipt each took their own).
            # No flush: the server takes a connection's commands in order, so the
            # subscription stands before the command it answers; a flush would wait out a
            # stalled server (nats-py's 10 s), and when one is cut short nats-py's read loop
            # dies on its late PONG.
            async with asyncio.timeout(self._receipt_timeout):
                sub = await self._nc.subscribe(consent_events_subject(command.call_id), cb=on_event)
                await self._js.publish(
                    consent_record_subject(command.call_id),
                    _encoder.encode(command),
                    # The call's trace context rides along, as on every request and event.
                    headers=telemetry.inject({MSG_ID_HEADER: command.command_id}),
                    timeout=self._receipt_timeout,
                )
                return await receipt
        except Exception as exc:
            # No stream, no ack or no receipt in time: the call goes on without recording.
            log.warning(
                "No consent receipt; recording stays off.",
                extra={
                    "call_id": command.call_id,
                    "command_id": command.command_id,
                    "error": type(exc).__name__,
                },
            )
            return None
        finally:
            if sub is not None:
                await sub.unsubscribe()


def _decode(body: bytes) -> ConsentEvent | None:
    try:
        read = read_event(body)
    except MalformedEvent:
        return None
    payload = None if read is None else read[1]
    return payload if isinstance(payload, ConsentRecorded | ConsentRevoked) else None
