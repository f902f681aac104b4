"""Service settings read from environment variables into one typed object per service.

Each service declares a ``msgspec.Struct`` subclass of ``ServiceSettings``; ``load``
fills it from ``SB_<FIELD>`` variables (strings converted to the field's type) and
raises ``SettingsError`` naming the variable when a value does not fit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

import msgspec

ENV_PREFIX = "SB_"


class SettingsError(ValueError):
    """A setting from the environment has the wrong type or value."""


class ServiceSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Settings every service shares."""

    nats_url: str = "nats://127.0.0.1:4222"
    """Comma-separated NATS server URLs."""
    nats_user: str | None = None
    nats_password: str | None = None
    nats_creds: str | None = None
    """Path to a NATS credentials file (nkey/JWT); preferred in production."""
    instance: str = ""
    """Name of this process in logs and events; defaults to the host name."""
    log_level: str = "INFO"
    trace_exporter: str = "none"
    """``none`` or ``console``; production wires an OTLP exporter through the SDK's env."""
    stream_replicas: int = 1
    """JetStream replicas for the streams this service creates (3 in production)."""
    request_timeout_s: float = 2.0

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.nats_url.split(",") if s.strip()]


S = TypeVar("S", bound=ServiceSettings)


def env_name(field: str, prefix: str = ENV_PREFIX) -> str:
    """The environment variable that sets ``field``."""
    return f"{prefix}{field.upper()}"


def load(cls: type[S], environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX) -> S:
    """Build ``cls`` from the environment; unset variables keep the field defaults."""
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for field in msgspec.structs.fields(cls):
        name = env_name(field.name, prefix)
        if name in env:
            raw[field.name] = env[name]
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc), prefix)) from None


def _explain(message: str, prefix: str) -> str:
    # msgspec says "... - at `$.field`"; name the variable the operator actually sets.
    if "`$." in message:
        field = message.rsplit("`$.", 1)[1].rstrip("`")
        return f"{message.split(' - at ')[0]} in {env_name(field, prefix)}."
    return message


def variables(cls: type[ServiceSettings], prefix: str = ENV_PREFIX) -> list[tuple[str, str]]:
    """(variable, default) pairs for documentation."""
    out = []
    for field in msgspec.structs.fields(cls):
        default = field.default if field.default is not msgspec.NODEFAULT else ""
        out.append((env_name(field.name, prefix), "" if default is None else str(default)))
    return out
