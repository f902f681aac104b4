"""The sip-bridge service on NATS: ``sb.transfer.place``, ``sb.transfer.cancel``,
``sb.transfer.decide`` (the briefed human's decision), ``sb.transfer.legs`` and, with the
simulated carrier only, ``sb.transfer.simulate``.

Handlers are thin: they hand typed requests to the transfer desk and turn its domain
errors into typed error replies. Events go to the events stream through the runtime's
``EventPublisher`` (CloudEvents, ``Nats-Msg-Id`` = the machine's deterministic event id).
On SIGTERM the runner stops taking requests and ``cleanup`` drains the desk: transfers in
progress get ``SB_TRANSFER_DRAIN_S`` to finish, then are failed cleanly. Each transfer is
recorded in the transfer journal (a KV bucket); every ``SB_TRANSFER_ORPHAN_CHECK_S`` (and at
start) the bridge ends the transfers of instances that no longer run (``journal``).
"""

from __future__ import annotations

import asyncio
import logging

from switchboard.contracts import streams
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.simulation import CarrierScripted, ScriptCarrier
from switchboard.contracts.subjects import (
    TRANSFER_CANCEL,
    TRANSFER_DECIDE,
    TRANSFER_LEGS,
    TRANSFER_PLACE,
    TRANSFER_SIMULATE,
    request_spec,
)
from switchboard.contracts.transfer import (
    CancelTransfer,
    HumanDecisionNoted,
    PlaceTransfer,
    ReportHumanDecision,
    TransferCancelled,
    TransferLegs,
    TransferLegsQuery,
    TransferPlaceReply,
)
from switchboard.runtime.bus import EventPublisher, require_stream
from switchboard.runtime.service import Cleanup, RequestError, Runtime, add_typed_endpoint
from switchboard.sip_bridge.assembly import Bridge, build_bridge
from switchboard.sip_bridge.desk import (
    DecisionOutOfTurn,
    DeskClosed,
    TransferDesk,
    TransferFinished,
    TransferIdConflict,
    UnknownTransfer,
)
from switchboard.sip_bridge.drivers.simulated import CarrierScripts
from switchboard.sip_bridge.journal_kv import open_journal
from switchboard.sip_bridge.settings import SipBridgeSettings, livekit_credentials

log = logging.getLogger(__name__)


class TransferHandlers:
    """One handler per request subject."""

    def __init__(self, desk: TransferDesk, scripts: CarrierScripts | None) -> None:
        self._desk = desk
        self._scripts = scripts

    async def on_place_transfer(self, request: PlaceTransfer) -> TransferPlaceReply:
        try:
            return await self._desk.place(request)
        except TransferIdConflict as exc:
            raise RequestError(ErrorCode.REJECTED, str(exc), field="$.transfer_id") from None
        except DeskClosed:
            raise RequestError(
                ErrorCode.UNAVAILABLE, "The bridge is shutting down; place the transfer again."
            ) from None

    async def on_cancel_transfer(self, request: CancelTransfer) -> TransferCancelled:
        try:
            return await self._desk.cancel(request)
        except UnknownTransfer as exc:
            raise RequestError(ErrorCode.NOT_FOUND, str(exc), field="$.transfer_id") from None
        except TransferFinished as exc:
            raise RequestError(ErrorCode.REJECTED, str(exc)) from None
        except DeskClosed as exc:
            raise RequestError(ErrorCode.UNAVAILABLE, str(exc)) from None

    async def on_human_decision(self, request: ReportHumanDecision) -> HumanDecisionNoted:
        try:
            return self._desk.decide(request)
        except UnknownTransfer as exc:
            raise RequestError(ErrorCode.NOT_FOUND, str(exc), field="$.transfer_id") from None
        except TransferFinished as exc:
            raise RequestError(ErrorCode.REJECTED, str(exc)) from None
        except DecisionOutOfTurn as exc:
            raise RequestError(ErrorCode.REJECTED, str(exc), field="$.attempt") from None

    async def on_legs_query(self, request: TransferLegsQuery) -> TransferLegs:
        return self._desk.legs(request.call_id)

    async def on_script_carrier(self, request: ScriptCarrier) -> CarrierScripted:
        if self._scripts is None:  # Not registered then; kept as a guard.
            raise RequestError(ErrorCode.REJECTED, "The bridge is not using a simulated carrier.")
        self._scripts.set(request.call_id, request.outcomes, request.ring_s)
        return CarrierScripted(call_id=request.call_id, outcomes=list(request.outcomes))


async def serve(rt: Runtime, bridge: Bridge) -> None:
    """Register the endpoints of ``bridge`` on the runtime's micro service."""
    handlers = TransferHandlers(bridge.desk, bridge.scripts)
    await add_typed_endpoint(rt.service, request_spec(TRANSFER_PLACE), handlers.on_place_transfer)
    await add_typed_endpoint(rt.service, request_spec(TRANSFER_CANCEL), handlers.on_cancel_transfer)
    await add_typed_endpoint(rt.service, request_spec(TRANSFER_DECIDE), handlers.on_human_decision)
    await add_typed_endpoint(rt.service, request_spec(TRANSFER_LEGS), handlers.on_legs_query)
    if bridge.scripts is not None:
        await add_typed_endpoint(
            rt.service, request_spec(TRANSFER_SIMULATE), handlers.on_script_carrier
        )
    # nats-py 2.16 writes flush()'s PING straight to the socket, ahead of SUBs still queued,
    # so one flush does not prove the endpoints reached the server. This flush puts the
    # SUBs on the wire; the runner's own flush after setup then confirms them.
    await rt.nc.flush()


async def recover_forever(desk: TransferDesk, interval_s: float) -> None:
    """End the transfers of crashed instances, at start and every ``interval_s``."""
    while True:
        try:
            await desk.recover_orphans()
        except Exception:
            log.exception("Looking for transfers of stopped instances failed.")
        await asyncio.sleep(interval_s)


async def setup(rt: Runtime) -> Cleanup:
    """Build the bridge from the runtime's settings and serve it."""
    settings = rt.settings
    if not isinstance(settings, SipBridgeSettings):
        raise TypeError("The sip-bridge needs SipBridgeSettings.")
    await require_stream(rt.js, streams.EVENTS)
    journal = await open_journal(rt.nc, rt.js)
    bridge = build_bridge(
        settings,
        EventPublisher(rt.js, instance=rt.instance),
        journal=journal,
        owner=rt.service.id,
    )
    await serve(rt, bridge)
    # Transfers of an instance that crashed are ended now and whenever one is found.
    recovery = asyncio.create_task(
        recover_forever(bridge.desk, settings.transfer_orphan_check_s), name="recovery"
    )
    if bridge.scripts is not None and livekit_credentials(settings) is not None:
        log.warning(
            "LiveKit credentials are set but calls are simulated "
            "(SB_CARRIER_DRIVER=simulated, or no SB_LIVEKIT_SIP_TRUNK_ID)."
        )
    log.info(
        "SIP bridge configured.",
        extra={
            "driver": bridge.driver.name,
            "cps": settings.transfer_cps,
            "max_concurrent": settings.transfer_max_concurrent,
        },
    )

    async def cleanup() -> None:
        recovery.cancel()
        await asyncio.gather(recovery, return_exceptions=True)
        await bridge.desk.drain(settings.transfer_drain_s)
        await bridge.driver.aclose()

    return cleanup
