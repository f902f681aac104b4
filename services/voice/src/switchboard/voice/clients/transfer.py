"""SIP bridge client: place a human transfer, follow its status events, report the briefed
human's decision, and read what the bridge still holds for a call.

Status events can arrive before the ``place`` reply (the bridge starts dialling at once),
so callers open a :meth:`TransferClient.watch` first and place the transfer inside it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from switchboard.contracts.envelope import CloudEvent, MalformedEvent, read_event
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.simulation import CarrierScripted, ScriptCarrier
from switchboard.contracts.subjects import (
    EVENTS_PREFIX,
    TRANSFER_CANCEL,
    TRANSFER_DECIDE,
    TRANSFER_LEGS,
    TRANSFER_PLACE,
    TRANSFER_SIMULATE,
    Owner,
)
from switchboard.contracts.transfer import (
    CancelTransfer,
    FailureReason,
    HumanDecisionNoted,
    PlaceTransfer,
    ReportHumanDecision,
    TransferAnswered,
    TransferBriefed,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferLegs,
    TransferLegsQuery,
    TransferPlaceReply,
    TransferQueued,
    TransferRejected,
    TransferRinging,
)
from switchboard.runtime.bus import RequestFailed, request
from switchboard.voice.clients.seen import SeenEvents

log = logging.getLogger(__name__)

CANCEL_ATTEMPTS = 3
BRIDGE_PING = f"$SRV.PING.{Owner.SIP_BRIDGE.value}"
"""Answered by every running SIP bridge instance (``nats.micro`` discovery)."""

TransferStatus = (
    TransferQueued
    | TransferDialing
    | TransferRinging
    | TransferAnswered
    | TransferBriefed
    | TransferConnected
    | TransferFailed
    | TransferCancelled
)
_STATUS_TYPES = (
    TransferQueued,
    TransferDialing,
    TransferRinging,
    TransferAnswered,
    TransferBriefed,
    TransferConnected,
    TransferFailed,
    TransferCancelled,
)


def transfer_events_subject(call_id: str) -> str:
    return f"{EVENTS_PREFIX}.transfer.*.{call_id}"


class TransferWatch:
    """Status events of one transfer, in the order the bus delivered them."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[TransferStatus] = asyncio.Queue()

    def _put(self, event: TransferStatus) -> None:
        self._queue.put_nowait(event)

    async def next(self, timeout: float) -> TransferStatus:
        """The next status event; raises ``TimeoutError`` when none arrives in time."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def get(self) -> TransferStatus:
        """The next status event, however long it takes (the caller bounds the wait)."""
        return await self._queue.get()


class TransferClient:
    """Places, cancels and (in simulation) scripts human transfers."""

    def __init__(self, nc: NATS, *, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout
        # One client per call (``wiring.new_call``): the events this call has applied.
        self._seen = SeenEvents()

    @property
    def seen_events(self) -> int:
        return len(self._seen)

    def forget_events(self) -> None:
        """The call ended: forget which events it applied."""
        self._seen.clear()

    @asynccontextmanager
    async def watch(self, call_id: str, transfer_id: str) -> AsyncIterator[TransferWatch]:
        watch = TransferWatch()

        async def on_event(msg: Msg) -> None:
            decoded = _decode(msg.data)
            if decoded is None:
                return
            envelope, event = decoded
            if event.transfer_id != transfer_id:
                return
            if not self._seen.first_time(envelope.source, envelope.id):
                # Delivered again (a reconnect, a redelivery): applied already.
                log.info(
                    "Ignored a repeated transfer event.",
                    extra={"call_id": call_id, "event_id": envelope.id},
                )
                return
            watch._put(event)

        # No flush: the server takes a connection's commands in order, so the subscription
        # stands before the place request that starts the transfer; a flush would wait out
        # a restarting server (nats-py's 10 s) with the caller in silence.
        sub = await self._nc.subscribe(transfer_events_subject(call_id), cb=on_event)
        try:
            yield watch
        finally:
            await sub.unsubscribe()

    async def bridge_answers(self, timeout: float, instance: str | None = None) -> bool:
        """Whether the SIP bridge ``instance`` (any instance when ``None``) answers
        ``$SRV.PING`` within ``timeout``."""
        subject = BRIDGE_PING if instance is None else f"{BRIDGE_PING}.{instance}"
        try:
            await self._nc.request(subject, b"", timeout=timeout)
        except (NoRespondersError, NatsTimeoutError):
            return False
        return True

    async def place(self, command: PlaceTransfer) -> TransferPlaceReply:
        """The bridge's reply; a local ``TransferRejected`` when the bridge does not answer."""
        try:
            reply: TransferPlaceReply = await request(
                self._nc, TRANSFER_PLACE, command, TransferPlaceReply, self._timeout
            )
        except RequestFailed as exc:
            log.warning(
                "SIP bridge did not take the transfer.",
                extra={"call_id": command.call_id, "code": str(exc.error.code)},
            )
            return TransferRejected(
                call_id=command.call_id,
                transfer_id=command.transfer_id,
                reason=FailureReason.CARRIER_ERROR,
                detail=f"sip-bridge: {exc.error.code}",
            )
        return reply

    async def cancel(self, call_id: str, transfer_id: str, reason: str) -> bool:
        """Ask the bridge to stop a transfer and hang up its legs; ``False`` if it could not
        be told. Asked again when the bridge did not answer in time: a cancel is idempotent,
        and a leg left ringing would outlive the call."""
        command = CancelTransfer(call_id=call_id, transfer_id=transfer_id, reason=reason)
        for attempt in range(1, CANCEL_ATTEMPTS + 1):
            try:
                await request(self._nc, TRANSFER_CANCEL, command, TransferCancelled, self._timeout)
            except RequestFailed as exc:
                code = exc.error.code
                log.warning(
                    "Could not cancel a transfer.",
                    extra={"call_id": call_id, "code": str(code), "try": attempt},
                )
                if code is not ErrorCode.UNAVAILABLE:
                    return False
                continue
            return True
        return False

    async def decide(self, report: ReportHumanDecision) -> bool:
        """Report the briefed human's decision; ``False`` if the bridge did not take it
        (the attempt already ended, or the bridge is down: it then ends the attempt itself
        when the briefing times out)."""
        try:
            await request(self._nc, TRANSFER_DECIDE, report, HumanDecisionNoted, self._timeout)
        except RequestFailed as exc:
            log.warning(
                "The bridge did not take the human's decision.",
                extra={"call_id": report.call_id, "code": str(exc.error.code)},
            )
            return False
        return True

    async def legs(self, call_id: str) -> TransferLegs | None:
        """The transfers and legs the bridge holds for a call; ``None`` if it does not say."""
        try:
            legs: TransferLegs = await request(
                self._nc,
                TRANSFER_LEGS,
                TransferLegsQuery(call_id=call_id),
                TransferLegs,
                self._timeout,
            )
        except RequestFailed:
            return None
        return legs

    async def script(self, command: ScriptCarrier) -> CarrierScripted | None:
        """Script the simulated carrier; ``None`` when no simulated bridge answers."""
        try:
            reply: CarrierScripted = await request(
                self._nc, TRANSFER_SIMULATE, command, CarrierScripted, self._timeout
            )
        except RequestFailed as exc:
            log.warning(
                "The simulated carrier could not be scripted.",
                extra={"call_id": command.call_id, "code": str(exc.error.code)},
            )
            return None
        return reply


def _decode(body: bytes) -> tuple[CloudEvent, TransferStatus] | None:
    try:
        read = read_event(body)
    except MalformedEvent:
        return None
    if read is None:
        return None
    envelope, payload = read
    return (envelope, payload) if isinstance(payload, _STATUS_TYPES) else None
