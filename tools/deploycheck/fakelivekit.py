"""A stand-in for the LiveKit server's agent endpoint, for the voice worker to register with.

A LiveKit worker opens a WebSocket to ``<LIVEKIT_URL>/agent`` with a JWT signed by its API
secret and sends a ``RegisterWorkerRequest``; the server answers with its worker id. This
endpoint checks the token (signature, API key, the ``agent`` grant), answers, and records
each registration. It dispatches no job: a real call needs LiveKit's media servers, so the
check plays its call in text mode instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import jwt
from aiohttp import WSMsgType, web
from livekit.protocol import agent, models


@dataclass(frozen=True, slots=True)
class Registration:
    agent_name: str
    version: str


class FakeLiveKit:
    """``ws://host:port/agent`` accepting workers that authenticate with ``api_secret``."""

    def __init__(self, host: str, port: int, api_key: str, api_secret: str) -> None:
        self.host, self.port = host, port
        self._key, self._secret = api_key, api_secret
        self.registrations: list[Registration] = []
        self.registered = asyncio.Event()
        self.refused = 0
        app = web.Application()
        app.router.add_get("/agent", self._agent)
        self._runner = web.AppRunner(app)

    async def start(self) -> FakeLiveKit:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def stop(self) -> None:
        await self._runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return False
        return bool(claims.get("iss") == self._key and claims.get("video", {}).get("agent"))

    async def _agent(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            self.refused += 1
            return web.Response(status=401, text="invalid token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = await ws.receive()
        message = agent.WorkerMessage()
        message.ParseFromString(first.data)
        if not message.HasField("register"):
            await ws.close()
            return ws
        reply = agent.ServerMessage(
            register=agent.RegisterWorkerResponse(
                worker_id=f"AW_check_{len(self.registrations)}",
                server_info=models.ServerInfo(version="deploy-check", protocol=16),
            )
        )
        await ws.send_bytes(reply.SerializeToString())
        self.registrations.append(
            Registration(message.register.agent_name, message.register.version)
        )
        self.registered.set()
        async for incoming in ws:  # status updates until the worker leaves
            if incoming.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        return ws
