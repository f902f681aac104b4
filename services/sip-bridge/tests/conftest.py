"""Fixtures for the sip-bridge tests: an in-memory event sink, humans who decide in the
consult room (in place of the voice worker's briefing session), the bridge served on a
real nats-server, a reader for the events stream, and a LiveKit server test double.

The double speaks the LiveKit Twirp protocol on 127.0.0.1: ``POST /twirp/<pkg>.<service>/
<method>`` with binary protobuf bodies (classes from ``livekit.protocol``), an HS256 JWT
bearer whose issuer is the API key and whose grants are checked per method, protobuf on
200 and JSON errors ``{"code", "msg", "meta"}`` otherwise, as the LiveKit server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jwt
import nats
import pytest
from aiohttp import web
from google.protobuf.message import Message as ProtoMessage
from livekit.protocol import models, room, sip
from nats.aio.client import Client as NATS
from nats.micro import add_service

from switchboard.contracts import streams
from switchboard.contracts.base import Message
from switchboard.contracts.envelope import CloudEvent, decode_event
from switchboard.contracts.subjects import Owner
from switchboard.contracts.transfer import (
    TransferAnswered,
    TransferCancelled,
    TransferConnected,
    TransferFailed,
)
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import ensure_stream
from switchboard.runtime.service import Runtime
from switchboard.sip_bridge.app import setup
from switchboard.sip_bridge.settings import SipBridgeSettings
from switchboard.testing import eventually

# The tests share helpers in bridge_testkit.py (a unique module name).
sys.path.insert(0, str(Path(__file__).parent))

from bridge_testkit import TEST_ALLOW, BusHumans, Humans

BRIDGE = Owner.SIP_BRIDGE.value
T = TypeVar("T")

# --------------------------------------------------------------------------- sinks


class RecordingSink:
    """An ``EventSink`` that keeps what it is given; ``fail_next`` simulates a dead bus.
    With ``humans`` set, each warm answer is decided by the next human."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Message]] = []
        self.fail_next = 0
        self.humans: Humans | None = None

    async def publish(self, payload: Message, event_id: str | None = None) -> object:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("bus down")
        assert event_id is not None
        self.events.append((event_id, payload))
        is_warm_answer = isinstance(payload, TransferAnswered) and payload.consult_room
        if self.humans is not None and is_warm_answer:
            assert isinstance(payload, TransferAnswered)
            self.humans.answered(payload)
        return event_id

    def events_of(self, transfer_id: str, cls: type[T]) -> list[T]:
        mine = [p for _, p in self.events if getattr(p, "transfer_id", None) == transfer_id]
        return [p for p in mine if isinstance(p, cls)]

    def kinds(self, transfer_id: str | None = None) -> list[str]:
        return [
            _kind(p)
            for _, p in self.events
            if transfer_id is None or getattr(p, "transfer_id", None) == transfer_id
        ]

    async def wait_for_end(self, transfer_id: str, timeout: float = 5.0) -> None:
        def ended() -> bool:
            mine = [p for _, p in self.events if getattr(p, "transfer_id", None) == transfer_id]
            assert any(_is_end(p) for p in mine), f"events so far: {self.kinds(transfer_id)}"
            return True

        await eventually(ended, timeout=timeout, message=f"the end of transfer {transfer_id}")


def _kind(payload: Message) -> str:
    return type(payload).__name__.removeprefix("Transfer").lower()


def _is_end(payload: Message) -> bool:
    if isinstance(payload, TransferFailed):
        return payload.final
    return isinstance(payload, TransferConnected | TransferCancelled)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


# --------------------------------------------------------------------------- bridge on NATS


@dataclass
class EventReader:
    """Reads one call's transfer events from the events stream (JetStream, not core)."""

    nc: NATS

    async def until_end(
        self, call_id: str, count_ends: int = 1, timeout: float = 10.0
    ) -> list[tuple[CloudEvent, Any, str | None]]:
        """Events of ``call_id`` in stream order until ``count_ends`` terminal events."""
        js = self.nc.jetstream()
        sub = await js.subscribe(f"sb.evt.transfer.*.{call_id}", ordered_consumer=True)
        out: list[tuple[CloudEvent, Any, str | None]] = []
        ends = 0
        try:
            async with asyncio.timeout(timeout):
                while ends < count_ends:
                    msg = await sub.next_msg(timeout=timeout)
                    event, payload = decode_event(msg.data)
                    out.append((event, payload, (msg.headers or {}).get("Nats-Msg-Id")))
                    ends += _is_end(payload)
        finally:
            await sub.unsubscribe()
        return out


@pytest.fixture
async def humans(nc: NATS) -> BusHumans:
    """Accepting humans on the test's server (set ``humans.decisions`` for others)."""
    return await BusHumans(nc).start()


@pytest.fixture
async def events(nc: NATS) -> EventReader:
    await ensure_stream(nc.jetstream(), streams.EVENTS)
    return EventReader(nc)


BridgeStarter = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def bridge(nats_server: NatsServer) -> AsyncIterator[BridgeStarter]:
    """Start the sip-bridge in this process on its own connection, like a real instance."""
    started: list[tuple[Runtime, Callable[[], Awaitable[None]] | None]] = []

    async def start(**overrides: Any) -> Runtime:
        values: dict[str, Any] = {
            "nats_url": nats_server.url,
            "transfer_allow": TEST_ALLOW,
            "transfer_cps": 100.0,
            "transfer_burst": 100,
            "sim_ring_s": 0.02,
            "transfer_drain_s": 0.5,
        }
        values.update(overrides)
        settings = SipBridgeSettings(**values)
        conn = await nats.connect(nats_server.url)
        service = await add_service(conn, name=BRIDGE, version="0.0.0-test", queue_group=BRIDGE)
        rt = Runtime(
            nc=conn,
            js=conn.jetstream(),
            service=service,
            settings=settings,
            name=BRIDGE,
        )
        cleanup = await setup(rt)
        await conn.flush()  # Second flush, as run_service does: the endpoints are live.
        started.append((rt, cleanup))
        return rt

    try:
        yield start
    finally:
        for rt, cleanup in started:
            await rt.service.stop()
            if cleanup is not None:
                await cleanup()
            await rt.nc.drain()


@pytest.fixture
def no_livekit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials in the developer's shell must not switch tests to the real driver."""
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- LiveKit double

API_KEY = "APItestkey"
API_SECRET = "test-secret-that-is-long-enough-for-hs256-signing"


@dataclass
class DialOutcome:
    """What the double's far end does with one dialled address (or REFER target)."""

    answer: bool = True
    ring_s: float = 0.05
    sip_code: int | None = None
    sip_phrase: str = ""
    http_status: int = 503
    twirp_code: str = "unavailable"
    transfer_reason: str | None = None


@dataclass
class Recorded:
    method: str
    request: ProtoMessage
    claims: dict[str, Any]
    headers: dict[str, str]


@dataclass
class LiveKitDouble:
    """A LiveKit server double: SIP dialling, REFER, and the room calls the bridge uses."""

    api_key: str = API_KEY
    api_secret: str = API_SECRET
    url: str = ""
    outcomes: dict[str, DialOutcome] = field(default_factory=dict)
    participants: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    calls: list[Recorded] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    hung_up: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    ringing_seen: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)

    def join(self, room_name: str, identity: str) -> None:
        self.participants[(room_name, identity)] = {}

    def leave(self, room_name: str, identity: str) -> None:
        """A participant hangs up."""
        del self.participants[(room_name, identity)]

    def in_room(self, room_name: str) -> set[str]:
        return {identity for room_name_, identity in self.participants if room_name_ == room_name}

    def script(self, address: str, **outcome: Any) -> None:
        """What the far end at ``address`` does (see ``DialOutcome``)."""
        self.outcomes[address] = DialOutcome(**outcome)

    def requests(self, method: str) -> list[Any]:
        return [c.request for c in self.calls if c.method == method]

    def recorded(self, method: str) -> list[Recorded]:
        return [c for c in self.calls if c.method == method]

    # -- protocol

    async def handle(self, request: web.Request) -> web.StreamResponse:
        service = request.match_info["service"]
        method = request.match_info["method"]
        route = _ROUTES.get((service, method))
        if route is None:
            return _error(404, "bad_route", f"no handler for {service}/{method}")
        if request.headers.get("Content-Type") != "application/protobuf":
            return _error(415, "malformed", "expected application/protobuf")
        request_class, grant_check, handler = route
        try:
            claims = self._verify(request.headers.get("Authorization", ""))
        except jwt.PyJWTError as exc:
            self.refused.append((method, 401))
            return _error(401, "unauthenticated", f"invalid token: {type(exc).__name__}")
        body = request_class.FromString(await request.read())
        if not grant_check(claims, body):
            self.refused.append((method, 403))
            return _error(403, "permission_denied", "missing grant")
        self.calls.append(Recorded(method, body, claims, dict(request.headers)))
        result = await handler(self, body)
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(
            body=result.SerializeToString(), content_type="application/protobuf", status=200
        )

    def _verify(self, header: str) -> dict[str, Any]:
        if not header.startswith("Bearer "):
            raise jwt.InvalidTokenError("no bearer token")
        claims: dict[str, Any] = jwt.decode(
            header.removeprefix("Bearer "),
            self.api_secret,
            algorithms=["HS256"],
            issuer=self.api_key,
            options={"require": ["exp", "iss"]},
        )
        return claims

    # -- methods

    async def create_sip_participant(self, req: Any) -> Any:
        key = (req.room_name, req.participant_identity)
        outcome = self.outcomes.get(req.sip_call_to, DialOutcome())
        self.participants[key] = {"sip.callStatus": "dialing"}
        hung_up = self.hung_up.setdefault(key, asyncio.Event())
        await asyncio.sleep(0.01)
        self.participants[key]["sip.callStatus"] = "ringing"
        # It rings at least until the bridge has read the ringing status, so the bridge's
        # ringing event never depends on ring_s outlasting its status poll.
        await _first_of(self.ringing_seen.setdefault(key, asyncio.Event()), hung_up)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hung_up.wait(), outcome.ring_s)
        if hung_up.is_set():  # Removing the ringing participant cancels the INVITE.
            return _error(499, "canceled", "participant removed while ringing")
        if not outcome.answer:
            self.participants.pop(key, None)
            return _sip_error(outcome)
        self.participants[key]["sip.callStatus"] = "active"
        return sip.SIPParticipantInfo(
            participant_id="PA_human",
            participant_identity=req.participant_identity,
            room_name=req.room_name,
            sip_call_id="SCL_test",
        )

    async def transfer_sip_participant(self, req: Any) -> Any:
        if (req.room_name, req.participant_identity) not in self.participants:
            return _error(404, "not_found", "participant not found")
        outcome = self.outcomes.get(req.transfer_to, DialOutcome())
        await asyncio.sleep(outcome.ring_s)
        if not outcome.answer:
            return _sip_error(outcome)
        del self.participants[(req.room_name, req.participant_identity)]
        return sip.TransferSIPParticipantResponse(
            transfer_id="ST_transfer", status=sip.SIPTransferStatus.STS_TRANSFER_SUCCESSFUL
        )

    async def get_participant(self, req: Any) -> Any:
        attributes = self.participants.get((req.room, req.identity))
        if attributes is None:
            return _error(404, "not_found", "participant not found")
        if attributes.get("sip.callStatus") == "ringing":
            self.ringing_seen.setdefault((req.room, req.identity), asyncio.Event()).set()
        return models.ParticipantInfo(identity=req.identity, attributes=attributes)

    async def move_participant(self, req: Any) -> Any:
        attributes = self.participants.pop((req.room, req.identity), None)
        if attributes is None:
            return _error(404, "not_found", "participant not found")
        self.participants[(req.destination_room, req.identity)] = attributes
        return room.MoveParticipantResponse()

    async def remove_participant(self, req: Any) -> Any:
        self.hung_up.setdefault((req.room, req.identity), asyncio.Event()).set()
        if self.participants.pop((req.room, req.identity), None) is None:
            return _error(404, "not_found", "participant not found")
        return room.RemoveParticipantResponse()

    async def delete_room(self, req: Any) -> Any:
        for key in [k for k in self.participants if k[0] == req.room]:
            del self.participants[key]
            self.hung_up.setdefault(key, asyncio.Event()).set()
        return room.DeleteRoomResponse()


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _error(status: int, code: str, msg: str, meta: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "msg": msg}
    if meta:
        body["meta"] = meta
    return web.json_response(body, status=status)


def _sip_error(outcome: DialOutcome) -> web.Response:
    meta: dict[str, str] = {}
    if outcome.sip_code is not None:
        meta["sip_status_code"] = str(outcome.sip_code)
        meta["sip_status"] = outcome.sip_phrase
    if outcome.transfer_reason is not None:
        meta["sip_transfer_reason"] = outcome.transfer_reason
    # Like the server, the message names the number; the bridge must not repeat it.
    return _error(outcome.http_status, outcome.twirp_code, "call to +14155550100 failed", meta)


def _video(claims: dict[str, Any]) -> dict[str, Any]:
    video: dict[str, Any] = claims.get("video") or {}
    return video


def _sip_call(claims: dict[str, Any], _req: Any) -> bool:
    return bool((claims.get("sip") or {}).get("call"))


def _room_admin(claims: dict[str, Any], req: Any) -> bool:
    video = _video(claims)
    return bool(video.get("roomAdmin")) and video.get("room") == req.room


def _transfer_grants(claims: dict[str, Any], req: Any) -> bool:
    video = _video(claims)
    return (
        _sip_call(claims, req)
        and bool(video.get("roomAdmin"))
        and video.get("room") == req.room_name
    )


def _room_create(claims: dict[str, Any], _req: Any) -> bool:
    return bool(_video(claims).get("roomCreate"))


_ROUTES: dict[tuple[str, str], tuple[Any, Any, Any]] = {
    ("livekit.SIP", "CreateSIPParticipant"): (
        sip.CreateSIPParticipantRequest,
        _sip_call,
        LiveKitDouble.create_sip_participant,
    ),
    ("livekit.SIP", "TransferSIPParticipant"): (
        sip.TransferSIPParticipantRequest,
        _transfer_grants,
        LiveKitDouble.transfer_sip_participant,
    ),
    ("livekit.RoomService", "GetParticipant"): (
        room.RoomParticipantIdentity,
        _room_admin,
        LiveKitDouble.get_participant,
    ),
    ("livekit.RoomService", "MoveParticipant"): (
        room.MoveParticipantRequest,
        lambda c, r: _room_admin(c, r) and _video(c).get("destinationRoom") == r.destination_room,
        LiveKitDouble.move_participant,
    ),
    ("livekit.RoomService", "RemoveParticipant"): (
        room.RoomParticipantIdentity,
        _room_admin,
        LiveKitDouble.remove_participant,
    ),
    ("livekit.RoomService", "DeleteRoom"): (
        room.DeleteRoomRequest,
        _room_create,
        LiveKitDouble.delete_room,
    ),
}


@pytest.fixture
async def livekit_double() -> AsyncIterator[LiveKitDouble]:
    double = LiveKitDouble()
    app = web.Application()
    app.router.add_post("/twirp/{service}/{method}", double.handle)
    # Like a real server, stop work for a request whose client went away.
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    double.url = f"http://{host}:{port}"
    try:
        yield double
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
