"""NATS connection, JetStream streams, event publishing and typed requests.

These are the only places services touch nats-py directly for the common cases, so
reconnect policy, headers and error decoding are the same everywhere.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar, overload

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER

from switchboard.contracts.base import Message, new_id
from switchboard.contracts.envelope import OutgoingEvent, encode_event
from switchboard.contracts.errors import ErrorCode, ErrorReply
from switchboard.contracts.permissions import inbox_prefix
from switchboard.contracts.streams import Retention, StreamSpec
from switchboard.runtime import telemetry, tls
from switchboard.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
T = TypeVar("T")


async def connect(settings: ServiceSettings, name: str, **options: Any) -> NATS:
    """Connect with unlimited reconnects; connection problems are logged, not raised.

    Replies come to ``_INBOX.<name>.…``: with NATS permissions on, a process may subscribe
    only under its own inbox prefix (``contracts.permissions``), so ``name`` is the
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


async def ensure_stream(js: JetStreamContext, spec: StreamSpec, replicas: int = 1) -> None:
    """Create the stream, or update it to match the spec; safe to call from every process."""
    config = stream_config(spec, replicas)
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with other settings (e.g. an older description): bring it up to date.
        await js.update_stream(config)


class EventPublisher:
    """Publishes contract events as CloudEvents to JetStream, de-duplicated by event id."""

    def __init__(self, js: JetStreamContext, source: str, timeout: float = 2.0) -> None:
        self._js = js
        self._source = source
        self._timeout = timeout

    async def publish(self, payload: Message, event_id: str | None = None) -> str:
        """Publish and wait for the stream's ack; returns the event id.

        Passing a stable ``event_id`` makes a retry after a lost ack harmless.
        """
        out, headers = self.encode(payload, event_id)
        await self._js.publish(out.subject, out.body, headers=headers, timeout=self._timeout)
        return out.event_id

    def encode(
        self, payload: Message, event_id: str | None = None
    ) -> tuple[OutgoingEvent, dict[str, str]]:
        """The encoded CloudEvent and its headers (``Nats-Msg-Id`` + trace context).

        One propagator run serves both the header and the CloudEvent ``traceparent``.
        """
        event_id = event_id or new_id()
        headers = telemetry.inject({MSG_ID_HEADER: event_id})
        out = encode_event(
            payload,
            source=self._source,
            event_id=event_id,
            traceparent=headers.get("traceparent"),
        )
        return out, headers


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
