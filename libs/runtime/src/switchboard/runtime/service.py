"""Typed request handlers on ``nats.micro`` and the runner every service process uses.

A handler is ``async def on_x(request: Req) -> Reply``: it never sees bytes. Decoding
errors (whatever the decoder raises) become a ``bad_request`` reply naming the field, a
``RequestError`` becomes its typed reply, and anything else becomes an ``internal`` reply
while the service keeps running; no error text holds a value from the request, and every
error reply counts in ``$SRV.STATS``. ``run_service`` connects, starts the micro service
(queue group = service name, ``$SRV`` discovery), waits for SIGTERM/SIGINT (or
``Runtime.fail``), stops taking requests, runs the service's cleanup and drains the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Endpoint, Service

from switchboard.contracts.errors import ErrorCode, ErrorReply
from switchboard.contracts.subjects import RequestSubject
from switchboard.runtime import telemetry
from switchboard.runtime.bus import StreamMissing, connect
from switchboard.runtime.logs import configure_logging, exception_facts
from switchboard.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Reply = TypeVar("Reply")
Handler = Callable[[Req], Awaitable[Any]]
Keep = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]
"""``Runtime.keep``'s shape, for parts that start their loops themselves."""

_encoder = msgspec.json.Encoder()
_FIELD_RE = re.compile(r"at `(\$[^`]*)`")
_MISSING_RE = re.compile(r"missing required field `([^`]+)`")
ROOT_FIELD = "$"
"""``ErrorReply.field`` when the body as a whole is wrong (not JSON, not an object)."""
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
MAX_ERROR_LEN = 500
EXIT_NOT_PROVISIONED = 3
FLUSH_TRY_S = 1.0
"""A service's exit code when a stream it needs does not exist."""


class RequestError(Exception):
    """Raised by a handler to send a typed error reply."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class ServiceFailed(RuntimeError):
    """A service stopped because a part of it that must keep running failed
    (``Runtime.fail``); the process should exit non-zero so it is restarted."""


def sanitize(text: str) -> str:
    """``text`` (an error message) without the values it quotes: msgspec quotes offending
    values (``Invalid enum value 'x'``), and those may be personal data. Paths and types
    (in backticks) stay."""
    return _QUOTED.sub("'…'", text)[:MAX_ERROR_LEN]


def bad_request(exc: Exception, subject: str) -> ErrorReply:
    """An error reply explaining why a request body did not decode (no value it held)."""
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        message = f"Invalid request: {text}"
    elif isinstance(exc, msgspec.DecodeError):
        text = str(exc)
        message = f"Request body is not valid JSON: {text}"
    elif isinstance(exc, UnicodeDecodeError):
        text, message = "", "Request body is not valid JSON: a string is not valid UTF-8."
    elif isinstance(exc, RecursionError):
        text, message = "", "Request body is not valid JSON: nested too deeply."
    else:
        text, message = "", f"Request body could not be decoded ({type(exc).__name__})."
    return ErrorReply(
        code=ErrorCode.BAD_REQUEST,
        message=sanitize(message),
        field=_field_path(text),
        subject=subject,
    )


def _field_path(text: str) -> str:
    """The JSON path of what a decode error is about. msgspec names the object that lacks
    a required field (nothing at the top level), so the missing name is appended; an error
    without a path is about the body as a whole (``$``)."""
    at = _FIELD_RE.search(text)
    path = at.group(1) if at else ROOT_FIELD
    missing = _MISSING_RE.search(text)
    return f"{path}.{missing.group(1)}" if missing else path


async def respond_error(request: Request, error: ErrorReply) -> None:
    await request.respond_error(error.status, error.message[:MAX_ERROR_LEN], _encoder.encode(error))


@dataclass
class TypedEndpoint(Generic[Req]):
    """Adapts a typed handler to a ``nats.micro`` handler for one request subject.

    Every request goes through ``_outcome``, which turns any exception into a typed
    ``ErrorReply`` whose text holds no input; nothing reaches ``nats.micro``, which would
    send ``repr(exc)`` in ``Nats-Service-Error`` and ``$SRV.STATS``. Error replies are
    counted in the endpoint's ``num_errors`` here, with ``last_error`` = status and code.
    """

    spec: RequestSubject
    handler: Handler[Req]
    queue_group: str
    decoder: msgspec.json.Decoder[Any] = field(init=False)
    max_concurrent: int | None = None
    """None: requests are handled one after another (nats-py calls a subscription's
    handler in order). A number: each request is handled in a task of its own, at most
    this many at once; one more is answered ``unavailable`` at once, never queued."""
    endpoint: Endpoint | None = field(default=None, init=False)
    """The ``nats.micro`` endpoint serving this (its statistics), once added."""
    _running: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.decoder = msgspec.json.Decoder(self.spec.request)

    async def __call__(self, request: Request) -> None:
        if self.max_concurrent is None:
            await self._handle(request)
            return
        if len(self._running) >= self.max_concurrent:
            busy = ErrorReply(
                code=ErrorCode.UNAVAILABLE,
                message="The service is busy with as many of these requests as it runs at "
                "once; try again shortly.",
                subject=self.spec.subject,
            )
            self._count_error(busy)
            await respond_error(request, busy)
            return
        task = asyncio.create_task(self._handle(request))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _handle(self, request: Request) -> None:
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
            outcome = await self._outcome(request.data)
            if isinstance(outcome, ErrorReply):
                span.set_attribute("switchboard.error.code", str(outcome.code))
                self._count_error(outcome)
                await respond_error(request, outcome)
            else:
                await request.respond(outcome)

    async def _outcome(self, data: bytes) -> bytes | ErrorReply:
        """The encoded reply, or the typed error to send instead."""
        subject = self.spec.subject
        try:
            message = self.decoder.decode(data)
        except Exception as exc:
            # Not only msgspec's errors: invalid UTF-8 in a string raises
            # UnicodeDecodeError, deep nesting RecursionError. Either way the body's fault.
            error = bad_request(exc, subject)
            log.info(
                "Rejected a malformed request.", extra={"subject": subject, "field": error.field}
            )
            return error
        try:
            return _encoder.encode(await self.handler(message))
        except RequestError as exc:
            # A bad request always names a field; a handler's refusal of the request as a
            # whole (a rule across fields) names the root.
            field = exc.field or (ROOT_FIELD if exc.code is ErrorCode.BAD_REQUEST else None)
            return ErrorReply(code=exc.code, message=exc.message, field=field, subject=subject)
        except Exception as exc:
            log.error(
                "A request handler failed.", extra={"subject": subject, **exception_facts(exc)}
            )
            return ErrorReply(
                code=ErrorCode.INTERNAL,
                message="The service failed to handle the request; it was logged.",
                subject=subject,
            )

    def _count_error(self, error: ErrorReply) -> None:
        # nats.micro counts only exceptions its handler raises, and reports their repr;
        # ours never raises, so the count and a text safe to show are kept here.
        if self.endpoint is not None:
            self.endpoint._num_errors += 1
            # Typed None in nats.micro, reported as a string in $SRV.STATS.
            self.endpoint._last_error = f"{error.status}:{error.code}"  # type: ignore[assignment]


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


async def add_typed_endpoint(
    service: Service,
    spec: RequestSubject,
    handler: Handler[Any],
    max_concurrent: int | None = None,
) -> None:
    """Serve ``spec.subject`` with ``handler`` in the service's queue group; with
    ``max_concurrent``, that many requests at once and ``unavailable`` beyond."""
    queue_group = spec.owner.value
    group = service.add_group(name=spec.group, queue_group=queue_group)
    typed = TypedEndpoint(spec, handler, queue_group, max_concurrent)
    await group.add_endpoint(name=spec.endpoint, handler=typed)
    # nats.micro's add_endpoint returns nothing; the endpoint it just appended is ours.
    typed.endpoint = next(e for e in reversed(service._endpoints) if e._handler is typed)


@dataclass
class Runtime:
    """What a service's setup function gets: its connection, JetStream and settings."""

    nc: NATS
    js: JetStreamContext
    service: Service
    settings: ServiceSettings
    name: str

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to stop the service (SIGTERM, SIGINT, the caller's ``stop``, ``fail``)."""
    metadata: dict[str, str] = field(default_factory=dict)
    """The service's ``$SRV.INFO`` metadata (its ``state``)."""
    failure: str | None = None
    """Why the service failed (``fail``), or None."""
    _kept: set[asyncio.Task[None]] = field(default_factory=set)
    """Tasks started by ``keep`` (held so they are not garbage-collected mid-run)."""

    @property
    def instance(self) -> str:
        return self.settings.instance or f"{self.name}@{socket.gethostname()}"

    def keep(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` (a loop that must last as long as the service: a consumer, a
        watcher) in a task; if it raises, or returns before the service is stopping, the
        service ``fail``s rather than answer requests with a part of it dead. Cancelling
        the task (in cleanup) is a normal end."""
        task = asyncio.create_task(work, name=name)
        self._kept.add(task)

        def ended(done: asyncio.Task[None]) -> None:
            self._kept.discard(done)
            if done.cancelled():
                return
            exc = done.exception()
            if exc is not None:
                log.error(
                    "A part of the service that must keep running failed.",
                    extra={"part": name, **exception_facts(exc)},
                )
                self.fail(f"{name} stopped ({type(exc).__name__})")
            elif not self.stopping.is_set():
                self.fail(f"{name} returned while the service was running")

        task.add_done_callback(ended)
        return task

    def fail(self, reason: str) -> None:
        """Stop the service because a part of it that must keep running has died (a
        consume loop): answering requests as if all were well would hide it. ``$SRV.INFO``
        says ``failed``, the service stops as on SIGTERM and ``run_service`` then raises
        ``ServiceFailed``, so the process exits non-zero and is restarted. ``reason`` is
        logged: it must not hold message content."""
        if self.failure is None:
            self.failure = reason
            self.metadata["state"] = "failed"
            log.error("The service failed and stops.", extra={"reason": reason})
        self.stopping.set()


Cleanup = Callable[[], Awaitable[None]]
Setup = Callable[[Runtime], Awaitable[Cleanup | None]]


async def confirm_registered(nc: NATS, stopping: asyncio.Event, try_s: float = FLUSH_TRY_S) -> None:
    """Return once the server has confirmed every subscription made so far (or on stop).

    nats-py can write flush()'s PING ahead of SUBs still in its pending buffer, so one
    flush does not prove the endpoints are registered; a second in a row does. While the
    client reconnects a flush proves nothing: it returns at once (its read loop is down),
    or never gets its PONG (nats-py forgets the PINGs it sent before) and times out. So a
    flush counts only on a connected client, each try is short, and anything else starts
    the count again: a server restarting as the service starts delays it, and it neither
    exits nor reports ready before the server has its endpoints."""
    confirmed = 0
    while confirmed < 2 and not stopping.is_set():
        if not nc.is_connected:
            confirmed = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), try_s)
            continue
        try:
            await nc.flush(timeout=try_s)  # type: ignore[arg-type]  # typed int, any number works
        except NatsTimeoutError:
            log.warning("NATS has not confirmed the endpoints yet; asking again.")
            confirmed = 0
        else:
            # A flush that returned as the client dropped proves nothing either.
            confirmed = confirmed + 1 if nc.is_connected else 0


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
    runtime = Runtime(
        nc=nc,
        js=nc.jetstream(),
        service=service,
        settings=settings,
        name=name,
        stopping=stopping,
        metadata=metadata,
    )
    try:
        cleanup = await setup(runtime)
    except StreamMissing as exc:
        log.critical("Refusing to start: a stream is missing.", extra={"error": str(exc)})
        await nc.close()
        raise SystemExit(EXIT_NOT_PROVISIONED) from None
    await confirm_registered(nc, stopping)
    if runtime.failure is None:
        metadata["state"] = "ready"
    log.info(
        "Service ready.",
        extra={"endpoints": [e.subject for e in service.info().endpoints], "id": service.id},
    )
    await stopping.wait()
    if runtime.failure is None:
        metadata["state"] = "stopping"
    log.info("Stopping: no new requests; finishing work in flight.")
    await service.stop()
    if cleanup is not None:
        await cleanup()
    await nc.drain()
    # The last spans (this shutdown's included) would be lost with the process otherwise.
    await asyncio.to_thread(telemetry.shutdown_tracing)
    if runtime.failure is not None:
        raise ServiceFailed(runtime.failure)
    log.info("Stopped.")
