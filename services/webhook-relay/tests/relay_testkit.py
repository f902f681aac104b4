"""A real HTTP receiver on 127.0.0.1 for the relay's tests: it records every request and
answers as the test scripts it (fail N times per webhook-id, be down, ask to retry later)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True, slots=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


Answer = Callable[["Receiver", dict[str, str]], tuple[int, dict[str, str]]]


def ok(_: Receiver, __: dict[str, str]) -> tuple[int, dict[str, str]]:
    return 204, {}


@dataclass
class Receiver:
    """``answer`` decides each response; ``requests`` keeps every one, in arrival order."""

    answer: Answer = ok
    delay_s: float = 0.0
    """How long each request takes to answer (a slow receiver)."""
    requests: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, extra = self.answer(self, headers)
        self.requests.append(Received(headers, body, time.monotonic(), status))
        return web.Response(status=status, headers=extra)

    def attempts(self, webhook_id: str) -> list[Received]:
        return [r for r in self.requests if r.webhook_id == webhook_id]

    def delivered(self) -> list[Received]:
        """Requests answered 2xx, in arrival order."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def delivered_ids(self) -> set[str]:
        return {r.webhook_id for r in self.delivered()}

    def verify_all(self, secret: str) -> None:
        """Every request verifies with the Standard Webhooks reference implementation."""
        verifier = Webhook(secret)
        for r in self.requests:
            verifier.verify(r.body, r.headers)
            assert r.event["id"] == r.webhook_id


def failing_first(times: int) -> Answer:
    """503 for the first ``times`` attempts of each webhook-id, then 204."""

    def answer(receiver: Receiver, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        seen = len(receiver.attempts(headers["webhook-id"]))
        return (503, {}) if seen < times else (204, {})

    return answer


def down(receiver: Receiver, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    return 503, {}
