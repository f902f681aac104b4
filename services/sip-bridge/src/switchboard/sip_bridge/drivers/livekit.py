"""The real carrier driver: human transfers through the LiveKit SIP and room APIs.

Warm transfer: ``CreateSIPParticipant`` dials the human into the consult room the voice
worker opened (its briefing session waits there) with ``wait_until_answered``, while the
human's ``sip.callStatus`` attribute is polled to report ringing. While the human is
briefed, their presence in the consult room is polled (a hang-up is a decline). On
accept, ``MoveParticipant`` brings them into the caller's room; the connected call is then
followed until the caller or the human leaves, and the caller's room is deleted, which
hangs up the other and ends any Egress recording. ``RemoveParticipant`` hangs up a leg
that is not connected; ``DeleteRoom`` removes the consult room when the transfer is over.
Cold transfer: ``TransferSIPParticipant`` sends the caller a SIP REFER to the destination.

Everything here is one LiveKit API call or a poll of one; the decisions (timeouts,
failover, what a failure means) are the desk's and are tested with the simulated carrier.

Failures arrive as ``api.SipCallError``/``api.ServerError`` carrying the SIP status;
they map to the same failure reasons as the simulated carrier. Error messages from the
server are never logged or published, because they can echo the dialled number.
"""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
from livekit import api

from switchboard.contracts.transfer import FailureReason, TransferMode
from switchboard.sip_bridge.drivers import sip_status
from switchboard.sip_bridge.drivers.base import (
    RING_TIMEOUT,
    Answered,
    DialFailed,
    DialPlan,
    OnRinging,
)
from switchboard.sip_bridge.drivers.sip_headers import handoff_headers, header_value
from switchboard.sip_bridge.settings import LiveKitCredentials

log = logging.getLogger(__name__)

CALL_STATUS_ATTRIBUTE = "sip.callStatus"
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")
_TRANSFER_REASONS: dict[str, FailureReason] = {
    "STR_RINGING_TIMEOUT": FailureReason.NO_ANSWER,
    "STR_REJECTED": FailureReason.DECLINED,
    "STR_CALL_ENDED": FailureReason.CALLER_HUNG_UP,
}


def failure_from_error(exc: api.ServerError, plan: DialPlan) -> DialFailed:
    """Translate a LiveKit API error into a typed attempt failure."""
    if isinstance(exc, api.SipCallError):
        code = exc.sip_status_code
        if code is not None:
            return DialFailed(
                sip_status.reason_for_status(code), code, sip_status.phrase(code, exc.sip_status)
            )
        transfer_reason = exc.sip_transfer_reason
        if transfer_reason is not None:
            reason = _TRANSFER_REASONS.get(transfer_reason, FailureReason.CARRIER_ERROR)
            return DialFailed(reason, detail=_safe_code(transfer_reason.lower()))
    if exc.code in (api.ServerErrorCode.UNAUTHENTICATED, api.ServerErrorCode.PERMISSION_DENIED):
        log.error("LiveKit refused the bridge's credentials.", extra=plan.log_extra)
        return DialFailed(
            FailureReason.CARRIER_ERROR, detail="LiveKit refused the bridge's credentials"
        )
    if exc.code == api.ServerErrorCode.DEADLINE_EXCEEDED:
        return DialFailed(FailureReason.NO_ANSWER, detail=RING_TIMEOUT)
    if exc.code == api.ServerErrorCode.RESOURCE_EXHAUSTED:
        return DialFailed(FailureReason.RATE_LIMITED, detail="LiveKit rate limit")
    return DialFailed(FailureReason.CARRIER_ERROR, detail=f"LiveKit error {_safe_code(exc.code)}")


def _safe_code(code: str) -> str:
    return code if _ERROR_CODE.fullmatch(code) else "unknown"


def _is_not_found(exc: api.ServerError) -> bool:
    return exc.code == api.ServerErrorCode.NOT_FOUND


class LiveKitCarrier:
    """A ``CarrierDriver`` on ``livekit.api.LiveKitAPI``."""

    name = "livekit"

    def __init__(
        self,
        credentials: LiveKitCredentials,
        *,
        trunk_id: str,
        status_poll_s: float = 0.5,
    ) -> None:
        self._api = api.LiveKitAPI(credentials.url, credentials.api_key, credentials.api_secret)
        self._trunk_id = trunk_id
        self._poll_s = status_poll_s

    async def dial(self, plan: DialPlan, on_ringing: OnRinging) -> Answered:
        if plan.mode is TransferMode.COLD:
            return await self._refer(plan)
        watcher = asyncio.create_task(self._watch_ringing(plan, on_ringing))
        try:
            await self._api.sip.create_sip_participant(self._create_request(plan))
        except api.ServerError as exc:
            raise failure_from_error(exc, plan) from None
        except (aiohttp.ClientError, TimeoutError):
            log.warning("LiveKit did not answer a dial request.", extra=plan.log_extra)
            raise DialFailed(FailureReason.CARRIER_ERROR, detail="LiveKit unreachable") from None
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        return Answered(consult_room=plan.consult_room, human_identity=plan.human_identity)

    async def human_left(self, plan: DialPlan) -> None:
        await self._until_absent(plan.consult_room, plan.human_identity)

    async def connect(self, plan: DialPlan, answered: Answered) -> None:
        if plan.mode is TransferMode.COLD:
            return  # The REFER already handed the caller over.
        await self._require_present(
            plan.room,
            plan.caller_identity,
            DialFailed(FailureReason.CALLER_HUNG_UP, detail="the caller left before connecting"),
            plan,
        )
        move = api.MoveParticipantRequest(
            room=plan.consult_room, identity=plan.human_identity, destination_room=plan.room
        )
        try:
            await self._api.room.move_participant(move)
        except api.ServerError as exc:
            if _is_not_found(exc):
                raise DialFailed(
                    FailureReason.HUMAN_DECLINED, detail="the human left before being connected"
                ) from None
            raise failure_from_error(exc, plan) from None
        except (aiohttp.ClientError, TimeoutError):
            raise DialFailed(FailureReason.CARRIER_ERROR, detail="LiveKit unreachable") from None

    async def supervise(self, plan: DialPlan) -> None:
        if plan.mode is TransferMode.COLD:
            return  # The REFER took the caller out of LiveKit: the carrier has the call.
        caller = asyncio.ensure_future(self._until_absent(plan.room, plan.caller_identity))
        human = asyncio.ensure_future(self._until_absent(plan.room, plan.human_identity))
        try:
            await asyncio.wait({caller, human}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for poll in (caller, human):
                poll.cancel()
            await asyncio.gather(caller, human, return_exceptions=True)
        # One party hung up: deleting the room hangs up the other and stops Egress.
        await self._delete_room(plan.room, plan)

    async def hang_up(self, plan: DialPlan) -> None:
        if plan.mode is TransferMode.COLD:
            return  # A REFER cannot be withdrawn; aborting the request is all there is.
        remove = api.RoomParticipantIdentity(room=plan.consult_room, identity=plan.human_identity)
        try:
            await self._api.room.remove_participant(remove)
        except api.ServerError as exc:
            if not _is_not_found(exc):
                log.warning("Could not hang up a transfer leg.", extra=plan.log_extra)
        except (aiohttp.ClientError, TimeoutError):
            log.warning("Could not hang up a transfer leg.", extra=plan.log_extra)

    async def finish(self, plan: DialPlan) -> None:
        if plan.mode is TransferMode.COLD:
            return
        await self._delete_room(plan.consult_room, plan)

    async def _delete_room(self, room: str, plan: DialPlan) -> None:
        try:
            await self._api.room.delete_room(api.DeleteRoomRequest(room=room))
        except api.ServerError as exc:
            if not _is_not_found(exc):
                log.warning("Could not delete a room.", extra=plan.log_extra)
        except (aiohttp.ClientError, TimeoutError):
            log.warning("Could not delete a room.", extra=plan.log_extra)

    async def aclose(self) -> None:
        await self._api.aclose()

    def _create_request(self, plan: DialPlan) -> api.CreateSIPParticipantRequest:
        destination = plan.destination
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=destination.trunk_id or self._trunk_id,
            room_name=plan.consult_room,
            participant_identity=plan.human_identity,
            participant_name=destination.label or "Human agent",
            participant_attributes={
                "switchboard.call_id": header_value(plan.call_id),
                "switchboard.transfer_id": header_value(plan.transfer_id),
                "switchboard.destination_id": header_value(destination.id),
            },
            headers=handoff_headers(plan),
            wait_until_answered=True,
            # Keep the human's number out of the attributes other participants can read.
            hide_phone_number=True,
        )
        if destination.address.startswith("+"):
            request.sip_call_to = destination.address
        else:
            user = destination.address.split(":", 1)[1].split("@", 1)[0]
            request.sip_call_to = user
            request.sip_request_uri.raw = destination.address
        request.ringing_timeout.FromMilliseconds(round(plan.ring_timeout_s * 1000))
        return request

    async def _refer(self, plan: DialPlan) -> Answered:
        address = plan.destination.address
        request = api.TransferSIPParticipantRequest(
            participant_identity=plan.caller_identity,
            room_name=plan.room,
            transfer_to=f"tel:{address}" if address.startswith("+") else address,
            headers=handoff_headers(plan),
        )
        request.ringing_timeout.FromMilliseconds(round(plan.ring_timeout_s * 1000))
        try:
            response = await self._api.sip.transfer_sip_participant(request)
        except api.ServerError as exc:
            raise failure_from_error(exc, plan) from None
        except (aiohttp.ClientError, TimeoutError):
            raise DialFailed(FailureReason.CARRIER_ERROR, detail="LiveKit unreachable") from None
        if response.status == api.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL:
            return Answered()
        code = response.sip_status.code
        if code:
            raise DialFailed(
                sip_status.reason_for_status(code),
                int(code),
                sip_status.phrase(int(code), response.sip_status.status),
            )
        reason_name = api.SIPTransferReason.Name(response.reason)
        raise DialFailed(
            _TRANSFER_REASONS.get(reason_name, FailureReason.CARRIER_ERROR),
            detail=reason_name.lower(),
        )

    async def _watch_ringing(self, plan: DialPlan, on_ringing: OnRinging) -> None:
        # With wait_until_answered the create call only returns on answer or failure;
        # the participant's sip.callStatus attribute is how LiveKit reports progress.
        lookup = api.RoomParticipantIdentity(room=plan.consult_room, identity=plan.human_identity)
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                info = await self._api.room.get_participant(lookup)
            except (api.ServerError, aiohttp.ClientError, TimeoutError):
                continue  # Not in the room yet, or a blip: the dial itself decides.
            status = info.attributes.get(CALL_STATUS_ATTRIBUTE)
            if status == "ringing":
                await on_ringing()
                return
            if status == "active":
                return

    async def _until_absent(self, room: str, identity: str) -> None:
        """Return once ``identity`` is no longer in ``room`` (a blip does not count)."""
        lookup = api.RoomParticipantIdentity(room=room, identity=identity)
        while True:
            try:
                await self._api.room.get_participant(lookup)
            except api.ServerError as exc:
                if _is_not_found(exc):
                    return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(self._poll_s)

    async def _require_present(
        self, room: str, identity: str, missing: DialFailed, plan: DialPlan
    ) -> None:
        try:
            await self._api.room.get_participant(
                api.RoomParticipantIdentity(room=room, identity=identity)
            )
        except api.ServerError as exc:
            if _is_not_found(exc):
                raise missing from None
            raise failure_from_error(exc, plan) from None
        except (aiohttp.ClientError, TimeoutError):
            raise DialFailed(FailureReason.CARRIER_ERROR, detail="LiveKit unreachable") from None
