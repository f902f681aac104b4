"""SIP bridge client: place a human transfer and follow its status events.

Status events can arrive before the ``place`` reply (the bridge starts dialling at once),
so callers open a :meth:`TransferClient.watch` first and place the transfer inside it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from switchboard.contracts.envelope import UnknownEventType, decode_event
from switchboard.contracts.simulation import CarrierScripted, ScriptCarrier
from switchboard.contracts.subjects import (
    EVENTS_PREFIX,
    TRANSFER_CANCEL,
    TRANSFER_PLACE,
    TRANSFER_SIMULATE,
)
from switchboard.contracts.transfer import (
    CancelTransfer,
    FailureReason,
    PlaceTransfer,
    TransferAnswered,
    TransferBriefed,
    TransferCancelled,
    TransferConnected,
    TransferDialing,
    TransferFailed,
    TransferPlaceReply,
    TransferRejected,
    TransferRinging,
)
from switchboard.runtime.bus import RequestFailed, request

log = logging.getLogger(__name__)

TransferStatus = (
    TransferDialing
    | TransferRinging
    | TransferAnswered
    | TransferBriefed
    | TransferConnected
    | TransferFailed
    | TransferCancelled
)
_STATUS_TYPES = (
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


class TransferClient:
    """Places, cancels and (in simulation) scripts human transfers."""

    def __init__(self, nc: NATS, *, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    @asynccontextmanager
    async def watch(self, call_id: str, transfer_id: str) -> AsyncIterator[TransferWatch]:
        watch = TransferWatch()

        async def on_event(msg: Msg) -> None:
            event = _decode(msg.data)
            if event is not None and event.transfer_id == transfer_id:
                watch._put(event)

        sub = await self._nc.subscribe(transfer_events_subject(call_id), cb=on_event)
        try:
            await self._nc.flush()
            yield watch
        finally:
            await sub.unsubscribe()

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
        """Ask the bridge to stop a transfer; ``False`` if it could not be told."""
        try:
            await request(
                self._nc,
                TRANSFER_CANCEL,
                CancelTransfer(call_id=call_id, transfer_id=transfer_id, reason=reason),
                TransferCancelled,
                self._timeout,
            )
        except RequestFailed as exc:
            log.warning(
                "Could not cancel a transfer.",
                extra={"call_id": call_id, "code": str(exc.error.code)},
            )
            return False
        return True

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


def _decode(body: bytes) -> TransferStatus | None:
    try:
        _, payload = decode_event(body)
    except (msgspec.DecodeError, UnknownEventType):
        return None
    return payload if isinstance(payload, _STATUS_TYPES) else None
