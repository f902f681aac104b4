"""NATS connection, JetStream streams, event publishing and typed requests.

These are the only places services touch nats-py directly for the common cases, so
reconnect policy, headers and error decoding are the same everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import logging
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER

from switchboard.contracts.base import Message, new_id
from switchboard.contracts.envelope import (
    CONTENT_TYPE_HEADER,
    EVENT_CONTENT_TYPE,
    OutgoingEvent,
    encode_event,
    spec_for,
)
from switchboard.contracts.errors import ErrorCode, ErrorReply
from switchboard.contracts.streams import Retention, StreamSpec
from switchboard.contracts.subjects import inbox_prefix
from switchboard.runtime import telemetry, tls
from switchboard.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
TRACEPARENT_HEADER = "traceparent"
T = TypeVar("T")


async def connect(settings: ServiceSettings, name: str, **options: Any) -> NATS:
    """Connect with unlimited reconnects; connection problems are logged, not raised.

    Replies come to ``_INBOX.<name>.…``: with NATS permissions on, a process may subscribe
    only under its own inbox prefix (``contracts.subjects.inbox_prefix``), so ``name`` is the
    process's role (``voice``, ``consent``, …) and must be one subject token.
    """

    async def on_error(exc: Exception) -> None:
        log.warning("NATS connection error.", extra={"error": repr(exc)})

    client: list[NATS] = []

    async def on_disconnected() -> None:
        # nats-py also calls this on a deliberate close or drain; only a lost link matters.
        if client and (client[0].is_closed or client[0].is_draining):
            return
        log.warning("Disconnected from NATS; reconnecting.")

    async def on_reconnected() -> None:
        log.info("Reconnected to NATS.")

    kwargs: dict[str, Any] = {
        "servers": settings.servers,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        "inbox_prefix": inbox_prefix(name),
    }
    context = tls.client_context(settings)
    if context is not None:
        kwargs["tls"] = context
        kwargs["tls_handshake_first"] = True
    if settings.nats_creds:
        kwargs["user_credentials"] = settings.nats_creds
    if settings.nats_user:
        kwargs["user"] = settings.nats_user
        kwargs["password"] = settings.nats_password
    kwargs.update(options)
    nc = await nats.connect(**kwargs)
    client.append(nc)
    return nc


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
    """The nats-py config for a contracts stream spec."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        description=spec.description,
        retention=(
            RetentionPolicy.WORK_QUEUE
            if spec.retention is Retention.WORK_QUEUE
            else RetentionPolicy.LIMITS
        ),
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s,
        num_replicas=max(replicas, spec.replicas),
    )


PROVISION_COMMAND = "python -m switchboard.runtime.provision"
"""The provisioning step that creates and updates the streams (``runtime.provision``)."""


class StreamMissing(RuntimeError):
    """A stream a service needs does not exist: the provisioning step has not run."""

    def __init__(self, stream: str) -> None:
        super().__init__(
            f"The JetStream stream {stream} does not exist; provision the streams first "
            f"({PROVISION_COMMAND}, with a user allowed to create them)."
        )
        self.stream = stream


async def require_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    """Check that the stream exists; ``StreamMissing`` when it does not.

    Services never create or update streams (their NATS users may not): a service that
    could reconfigure a stream could also shrink it and delete what it holds. The
    provisioning step (``runtime.provision``) does, with its own user.
    """
    try:
        await js.stream_info(spec.name)
    except NotFoundError:
        raise StreamMissing(spec.name) from None


async def ensure_stream(js: JetStreamContext, spec: StreamSpec, replicas: int = 1) -> None:
    """Create the stream, or update it to match the spec (the provisioning step's job)."""
    config = stream_config(spec, replicas)
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with other settings (e.g. an older description): bring it up to date.
        await js.update_stream(config)


@dataclass(frozen=True, slots=True)
class Sent:
    """An event handed to the publisher: its id, and a future done once JetStream stored it.

    Cancelling ``stored`` gives the event up: it is no longer confirmed or retried.
    """

    event_id: str
    stored: asyncio.Future[None]


class PublisherClosed(RuntimeError):
    """``send`` after ``close``."""


@dataclass(slots=True)
class _Outgoing:
    """One sent event until JetStream has stored it: the same bytes on every try."""

    out: OutgoingEvent
    headers: dict[str, str]
    payload_type: type[Message]
    stored: asyncio.Future[None]
    sent_at: float
    ack: asyncio.Future[Any] | None = None

    def stop_waiting(self) -> None:
        if self.ack is not None and not self.ack.done():
            self.ack.cancel()  # gives nats-py's slot of publish_async_max_pending back


class EventPublisher:
    """Publishes contract events as CloudEvents to JetStream, de-duplicated by event id.

    ``send`` writes an event and returns at once; the stream's ack is confirmed in the
    background (nats-py's ``publish_async``). A failed ack hands the event to a retry loop
    that republishes the same bytes, so the same ``Nats-Msg-Id``, which JetStream
    de-duplicates, backing off up to ``max_retry_delay`` until it is stored. Failed means:
    no stream answered (nats-py fails the future with ``NoStreamResponseError``), an error
    reply, or no ack within ``timeout``. nats-py's ack futures have no timeout of their
    own, and 2.16 never completes one for an error reply (its reply handler raises instead
    of failing the future), so the timeout is also what notices a refusal there.

    ``settle`` waits for what is outstanding; ``close`` does too, then stops and logs the
    ids of any event left (ids only: payloads may be personal). ``publish`` is the plain
    form for callers that need the ack inline: one try, awaited, errors raised.

    The publisher uses ``publish_async`` on ``js`` alone, so give it a JetStream context
    of its own when other code publishes asynchronously on the same connection.
    """

    def __init__(
        self,
        js: JetStreamContext,
        timeout: float = 2.0,
        *,
        instance: str = "",
        source: str | None = None,
        retry_delay: float = 0.25,
        max_retry_delay: float = 5.0,
    ) -> None:
        self._js = js
        self._instance = instance
        self._source = source
        """Every event's ``source`` when set (one producer's own numbering needs one
        source); else each type's owner."""
        self._timeout = timeout
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._tokens = itertools.count()
        self._awaiting: dict[int, _Outgoing] = {}
        """Events written and waiting for their ack, oldest first."""
        self._retry: dict[int, _Outgoing] = {}
        """Events whose ack failed, in the order they failed."""
        self._expirer: asyncio.Task[None] | None = None
        self._retrier: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def unstored(self) -> int:
        """Events sent, not given up, and not yet acknowledged by JetStream."""
        return sum(1 for item in self._outstanding() if not item.stored.cancelled())

    def encode(
        self,
        payload: Message,
        event_id: str | None = None,
        traceparent: str | None = None,
        *,
        time: dt.datetime | None = None,
        sequence: int | None = None,
    ) -> tuple[OutgoingEvent, dict[str, str]]:
        """The encoded CloudEvent and its headers (``Nats-Msg-Id``, ``Content-Type`` of the
        CloudEvents structured mode, trace context).

        ``traceparent`` continues a trace received from elsewhere (a consumed message);
        without it the current context is used. One value serves both the header and the
        CloudEvent ``traceparent``. ``time`` is when the fact happened (default: the
        payload's own time of it, else now); ``sequence`` the event's number in its call.
        """
        event_id = event_id or new_id()
        base = {MSG_ID_HEADER: event_id, CONTENT_TYPE_HEADER: EVENT_CONTENT_TYPE}
        if traceparent is None:
            headers = telemetry.inject(base)
        else:
            headers = {**base, TRACEPARENT_HEADER: traceparent}
        out = encode_event(
            payload,
            event_id=event_id,
            traceparent=headers.get(TRACEPARENT_HEADER),
            time=time,
            sequence=sequence,
            instance=self._instance,
            source=self._source,
        )
        return out, headers

    async def publish(
        self,
        payload: Message,
        event_id: str | None = None,
        *,
        traceparent: str | None = None,
        time: dt.datetime | None = None,
    ) -> str:
        """Publish and wait for the stream's ack; returns the event id.

        Passing a stable ``event_id`` makes a retry after a lost ack harmless.
        """
        out, headers = self.encode(payload, event_id, traceparent, time=time)
        await self._js.publish(out.subject, out.body, headers=headers, timeout=self._timeout)
        return out.event_id

    async def send(
        self,
        payload: Message,
        event_id: str | None = None,
        *,
        traceparent: str | None = None,
        time: dt.datetime | None = None,
        sequence: int | None = None,
    ) -> Sent:
        """Write the event to the connection and return without waiting for the ack.

        The event is in the connection's buffer when this returns (it suspends only while
        nats-py's limit of unacknowledged publishes is reached), so whatever the caller
        writes next on the connection, a reply for one, reaches the server after it.
        """
        out, headers = self.encode(payload, event_id, traceparent, time=time, sequence=sequence)
        return await self.send_encoded(out, headers, type(payload))

    async def send_encoded(
        self, out: OutgoingEvent, headers: dict[str, str], payload_type: type[Message]
    ) -> Sent:
        """``send`` for an event encoded earlier (an outbox replaying what it kept): the
        same bytes and headers, so the same identity and time."""
        if self._closed:
            raise PublisherClosed("The event publisher is closed.")
        loop = asyncio.get_running_loop()
        item = _Outgoing(out, headers, payload_type, loop.create_future(), loop.time())
        token = next(self._tokens)
        newest = _newest_ack(self._js)
        try:
            ack = await self._js.publish_async(out.subject, out.body, headers=headers)
        except NatsError as exc:  # closed, or reconnecting with a full buffer
            _release_unwritten(self._js, newest)
            self._fail(token, item, type(exc).__name__)
        else:
            item.ack = ack
            self._awaiting[token] = item
            ack.add_done_callback(functools.partial(self._on_ack, token))
            if self._expirer is None or self._expirer.done():
                self._expirer = loop.create_task(self._expire_loop(), name="event acks")
        return Sent(out.event_id, item.stored)

    async def settle(self, timeout: float | None = None) -> bool:
        """Wait until every event sent so far is stored (or ``timeout``); True if all are."""
        waiting = [item.stored for item in self._outstanding()]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        return all(f.done() for f in waiting)

    async def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` for every event to be stored, then stop; report leftovers.

        Events left stay counted in ``unstored`` and their ``stored`` futures stay pending.
        """
        if self._closed:
            return
        await self.settle(timeout)
        self._closed = True
        for task in (self._expirer, self._retrier):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        left = [item for item in self._outstanding() if not item.stored.cancelled()]
        for item in self._outstanding():
            item.stop_waiting()
        if left:
            ids = sorted(item.out.event_id for item in left)
            log.error(
                "Events could not be stored before shutdown.",
                extra={"count": len(ids), "event_ids": ids},
            )

    def _outstanding(self) -> list[_Outgoing]:
        return [*self._awaiting.values(), *self._retry.values()]

    def _on_ack(self, token: int, ack: asyncio.Future[Any]) -> None:
        if self._closed:
            return
        item = self._awaiting.pop(token, None)
        if item is None:
            return
        if ack.cancelled():
            self._fail(token, item, "no ack in time")
        elif isinstance(ack.exception(), NoStreamResponseError):
            self._fail(token, item, "no stream")
        elif ack.exception() is not None:
            self._fail(token, item, "stream error")
        elif not item.stored.done():
            item.stored.set_result(None)

    def _fail(self, token: int, item: _Outgoing, reason: str) -> None:
        if item.stored.cancelled():
            return  # given up by its sender: nothing to retry
        log.warning(
            "Event not stored yet; retrying in the background.",
            extra={
                "event_type": spec_for(item.payload_type).type,
                "event_id": item.out.event_id,
                "reason": reason,
            },
        )
        self._retry[token] = item
        if self._retrier is None or self._retrier.done():
            self._retrier = asyncio.get_running_loop().create_task(
                self._retry_loop(), name="event retries"
            )

    async def _expire_loop(self) -> None:
        # One sweep for every ack rather than a timer each; the oldest come first, and an
        # ack counts as missing between ``timeout`` and 1.5 x ``timeout`` after the send.
        loop = asyncio.get_running_loop()
        while self._awaiting:
            await asyncio.sleep(min(1.0, self._timeout / 2))
            cutoff = loop.time() - self._timeout
            for item in list(itertools.islice(self._awaiting.values(), 10_000)):
                if item.sent_at > cutoff:
                    break
                item.stop_waiting()  # its callback hands it to the retry loop (or drops it)

    async def _retry_loop(self) -> None:
        delay = self._retry_delay
        while self._retry:
            await asyncio.sleep(delay)
            for token, item in list(self._retry.items()):
                if item.stored.cancelled():
                    del self._retry[token]  # given up by its sender meanwhile
                    continue
                try:
                    await self._js.publish(
                        item.out.subject, item.out.body, headers=item.headers, timeout=self._timeout
                    )
                except Exception as exc:
                    # Still not stored (or a bug): keep it, keep the order, back off.
                    log.debug("A retried event failed again.", extra={"error": type(exc).__name__})
                    delay = min(delay * 2, self._max_retry_delay)
                    break
                del self._retry[token]
                if not item.stored.done():
                    item.stored.set_result(None)
                delay = self._retry_delay


def _newest_ack(js: JetStreamContext) -> str | None:
    futures = getattr(js, "_publish_async_futures", None)
    return next(reversed(futures), None) if futures else None


def _release_unwritten(js: JetStreamContext, newest_before: str | None) -> None:
    """Give back the ack slot of a ``publish_async`` whose write raised.

    nats-py 2.16 registers the ack future before it writes and leaves it pending when the
    write raises (connection closed, or reconnecting with a full buffer): that slot of
    ``publish_async_max_pending`` is never released, and once all are gone every
    ``publish_async`` blocks. Nothing yields between the registration and the raise, so
    the future is the newest one, if it is new.
    """
    futures = getattr(js, "_publish_async_futures", None)
    newest = next(reversed(futures), None) if futures else None
    if futures and newest is not None and newest != newest_before:
        leaked = futures[newest]
        if not leaked.done():
            leaked.cancel()


class RequestFailed(Exception):
    """A request got an error reply, no responder, or no answer in time."""

    def __init__(self, error: ErrorReply) -> None:
        super().__init__(error.message)
        self.error = error


_encoder = msgspec.json.Encoder()
_error_decoder = msgspec.json.Decoder(ErrorReply)


@overload
async def request(
    nc: NATS, subject: str, message: msgspec.Struct, reply_type: type[T], timeout: float
) -> T: ...


@overload
async def request(
    nc: NATS, subject: str, message: msgspec.Struct, reply_type: Any, timeout: float
) -> Any: ...


async def request(
    nc: NATS,
    subject: str,
    message: msgspec.Struct,
    reply_type: Any,
    timeout: float,
) -> Any:
    """Send a typed request and decode the typed reply.

    Raises ``RequestFailed`` carrying an ``ErrorReply`` for error replies, for no responders
    (``unavailable``) and for timeouts (``unavailable``), so callers apply one fallback path.
    """
    try:
        msg = await nc.request(
            subject, _encoder.encode(message), timeout=timeout, headers=telemetry.inject()
        )
    except NoRespondersError:
        raise RequestFailed(
            ErrorReply(
                code=ErrorCode.UNAVAILABLE,
                message=f"No service answers {subject}.",
                subject=subject,
            )
        ) from None
    except NatsTimeoutError:
        raise RequestFailed(
            ErrorReply(
                code=ErrorCode.UNAVAILABLE,
                message=f"No answer on {subject} within {timeout:.2f} s.",
                subject=subject,
            )
        ) from None
    except NatsError as exc:
        # The connection closed, draining or over its buffer: the service is as
        # unreachable as when nobody answers, and the caller's fallback is the same.
        raise RequestFailed(
            ErrorReply(
                code=ErrorCode.UNAVAILABLE,
                message=f"Could not send to {subject} ({type(exc).__name__}).",
                subject=subject,
            )
        ) from None
    headers = msg.headers or {}
    if ERROR_CODE_HEADER in headers:
        try:
            error = _error_decoder.decode(msg.data)
        except msgspec.DecodeError:
            error = ErrorReply(
                code=ErrorCode.INTERNAL,
                message=headers.get(ERROR_HEADER, "Unknown error."),
                subject=subject,
            )
        raise RequestFailed(error)
    return msgspec.json.decode(msg.data, type=reply_type)
