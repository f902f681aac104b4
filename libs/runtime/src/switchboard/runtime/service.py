"""Typed request handlers on ``nats.micro`` and the runner every service process uses.

A handler is ``async def on_x(request: Req) -> Reply``: it never sees bytes. Decoding
errors become a ``bad_request`` reply naming the field, a ``RequestError`` becomes its
typed reply, and anything else becomes an ``internal`` reply while the service keeps
running. ``run_service`` connects, starts the micro service (queue group = service name,
``$SRV`` discovery), waits for SIGTERM/SIGINT, stops taking requests, runs the service's
cleanup and drains the connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from switchboard.contracts.errors import ErrorCode, ErrorReply
from switchboard.contracts.subjects import RequestSubject
from switchboard.runtime import telemetry
from switchboard.runtime.bus import StreamMissing, connect
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Reply = TypeVar("Reply")
Handler = Callable[[Req], Awaitable[Any]]

_encoder = msgspec.json.Encoder()
_FIELD_RE = re.compile(r"at `(\$[^`]*)`")
MAX_ERROR_LEN = 500
EXIT_NOT_PROVISIONED = 3
"""A service's exit code when a stream it needs does not exist."""


class RequestError(Exception):
    """Raised by a handler to send a typed error reply."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def bad_request(exc: msgspec.DecodeError, subject: str) -> ErrorReply:
    """An error reply explaining why a request body did not decode."""
    text = str(exc)
    match = _FIELD_RE.search(text)
    if isinstance(exc, msgspec.ValidationError):
        message = f"Invalid request: {text}"
    else:
        message = f"Request body is not valid JSON: {text}"
    return ErrorReply(
        code=ErrorCode.BAD_REQUEST,
        message=message[:MAX_ERROR_LEN],
        field=match.group(1) if match else None,
        subject=subject,
    )


async def respond_error(request: Request, error: ErrorReply) -> None:
    await request.respond_error(error.status, error.message[:MAX_ERROR_LEN], _encoder.encode(error))


@dataclass
class TypedEndpoint(Generic[Req]):
    """Adapts a typed handler to a ``nats.micro`` handler for one request subject."""

    spec: RequestSubject
    handler: Handler[Req]
    queue_group: str
    decoder: msgspec.json.Decoder[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.decoder = msgspec.json.Decoder(self.spec.request)

    async def __call__(self, request: Request) -> None:
        subject = self.spec.subject
        delivery = jetstream_delivery(request)
        if delivery is not None:
            # A push consumer whose deliver subject is a request subject turns stored
            # messages into requests (any NATS user allowed to create a consumer can make
            # one). A request comes from a client and carries its inbox; a JetStream
            # delivery carries an ack subject instead. Not answering leaves it unacked.
            log.warning(
                "Ignored a JetStream delivery on a request subject.",
                extra={"subject": subject, "stream": delivery[0], "consumer": delivery[1]},
            )
            return
        with telemetry.consumer_span(subject, request.headers, group=self.queue_group) as span:
            try:
                message = self.decoder.decode(request.data)
            except msgspec.DecodeError as exc:
                error = bad_request(exc, subject)
                span.set_attribute("switchboard.error.code", str(error.code))
                log.info(
                    "Rejected a malformed request.",
                    extra={"subject": subject, "field": error.field},
                )
                await respond_error(request, error)
                return
            try:
                reply = await self.handler(message)
            except RequestError as exc:
                span.set_attribute("switchboard.error.code", str(exc.code))
                await respond_error(
                    request,
                    ErrorReply(
                        code=exc.code, message=exc.message, field=exc.field, subject=subject
                    ),
                )
                return
            except Exception:
                log.exception("A request handler failed.", extra={"subject": subject})
                span.set_attribute("switchboard.error.code", str(ErrorCode.INTERNAL))
                await respond_error(
                    request,
                    ErrorReply(
                        code=ErrorCode.INTERNAL,
                        message="The service failed to handle the request; it was logged.",
                        subject=subject,
                    ),
                )
                return
            await request.respond(_encoder.encode(reply))


JS_ACK_PREFIX = "$JS.ACK."


def jetstream_delivery(request: Request) -> tuple[str, str] | None:
    """(stream, consumer) when the message was delivered by a JetStream push consumer
    (its reply subject is ``$JS.ACK.<stream>.<consumer>.…``), else ``None``."""
    # nats.micro's Request exposes no reply subject; the message it wraps has it.
    reply: str = getattr(getattr(request, "_msg", None), "reply", "") or ""
    if not reply.startswith(JS_ACK_PREFIX):
        return None
    tokens = reply.split(".")
    if len(tokens) >= 12:  # the v2 form: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>…
        return tokens[4], tokens[5]
    return (tokens[2], tokens[3]) if len(tokens) > 3 else ("", "")


async def add_typed_endpoint(service: Service, spec: RequestSubject, handler: Handler[Any]) -> None:
    """Serve ``spec.subject`` with ``handler`` in the service's queue group."""
    queue_group = spec.owner.value
    group = service.add_group(name=spec.group, queue_group=queue_group)
    await group.add_endpoint(
        name=spec.endpoint,
        handler=TypedEndpoint(spec, handler, queue_group),
    )


@dataclass
class Runtime:
    """What a service's setup function gets: its connection, JetStream and settings."""

    nc: NATS
    js: JetStreamContext
    service: Service
    settings: ServiceSettings
    name: str

    @property
    def instance(self) -> str:
        return self.settings.instance or f"{self.name}@{socket.gethostname()}"


Cleanup = Callable[[], Awaitable[None]]
Setup = Callable[[Runtime], Awaitable[Cleanup | None]]


async def run_service(
    name: str,
    version: str,
    settings: ServiceSettings,
    setup: Setup,
    description: str = "",
    stop: asyncio.Event | None = None,
) -> None:
    """Run one service until SIGTERM/SIGINT (or ``stop`` is set), then shut down cleanly."""
    configure_logging(name, settings.log_level)
    telemetry.setup_tracing(name, settings.trace_exporter)
    stopping = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    nc = await connect(settings, name)
    # nats.micro keeps this dict by reference and reports it in $SRV.INFO, so flipping
    # "state" after setup tells launchers and operators the endpoints are all registered.
    metadata = {"state": "starting"}
    service = await add_service(
        nc,
        name=name,
        version=version,
        description=description,
        queue_group=name,
        metadata=metadata,
    )
    runtime = Runtime(nc=nc, js=nc.jetstream(), service=service, settings=settings, name=name)
    try:
        cleanup = await setup(runtime)
    except StreamMissing as exc:
        log.critical("Refusing to start: a stream is missing.", extra={"error": str(exc)})
        await nc.close()
        raise SystemExit(EXIT_NOT_PROVISIONED) from None
    # nats-py can write flush()'s PING ahead of SUBs still in its pending buffer, so one
    # flush does not prove the endpoints are registered; the second PONG does.
    await nc.flush()
    await nc.flush()
    metadata["state"] = "ready"
    log.info(
        "Service ready.",
        extra={"endpoints": [e.subject for e in service.info().endpoints], "id": service.id},
    )
    await stopping.wait()
    metadata["state"] = "stopping"
    log.info("Stopping: no new requests; finishing work in flight.")
    await service.stop()
    if cleanup is not None:
        await cleanup()
    await nc.drain()
    # The last spans (this shutdown's included) would be lost with the process otherwise.
    await asyncio.to_thread(telemetry.shutdown_tracing)
    log.info("Stopped.")
