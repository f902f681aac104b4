"""Service settings read from environment variables into one typed object per service.

Each service declares a ``msgspec.Struct`` subclass of ``ServiceSettings``; ``load``
fills it from ``SB_<FIELD>`` variables (strings converted to the field's type) and
raises ``SettingsError`` naming the variable when a value does not fit.

Settings are a contract: an ``SB_*`` variable the service does not read is an error too
(a misspelt or renamed variable would otherwise be ignored and its default used — a
ledger told where its signing key is under a name nobody reads generates a new one).
The error names the variable and the closest one the service knows. The only exceptions
are ``SHARED_VARIABLES``: variables that reach a process only because it inherits the
environment of another one that reads them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, TypeVar

import msgspec

ENV_PREFIX = "SB_"

SHARED_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "SB_TEST_POSTGRES_DSN": "read by the test suite's PostgreSQL fixture (CI may set it "
        "for the whole run); the services the tests start inherit the test environment",
    }
)
"""``SB_*`` variables a service may find in its environment without reading them, and who
does read them. Nothing else is tolerated: a Kubernetes ConfigMap shared by several
Deployments holds only ``ServiceSettings`` fields, which every service reads, and the
devstack launcher (demo, benchmarks) passes a service none of its parent's ``SB_*``."""

TraceExporter = Literal["none", "console", "otlp"]


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
    """Name of this process, in the ``instance`` extension of the events it publishes;
    defaults to ``<service>@<host>``. Events' ``source`` names the service, not this."""
    nats_tls_ca_file: str = ""
    """PEM bundle of the CA that signed the NATS servers' certificates. Set, the connection
    uses TLS and accepts only a server certificate from this CA for the URL's host name."""
    nats_tls_cert_file: str = ""
    """Client certificate (PEM) for mutual TLS; needs ``nats_tls_key_file``."""
    nats_tls_key_file: str = ""
    log_level: str = "INFO"
    trace_exporter: TraceExporter = "none"
    """``none``, ``console`` or ``otlp``. The OTLP exporter takes its endpoint, headers,
    timeout and CA from the standard ``OTEL_EXPORTER_OTLP_*`` variables."""
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


def known_variables(cls: type[ServiceSettings], prefix: str = ENV_PREFIX) -> frozenset[str]:
    """The variables ``cls`` reads."""
    return frozenset(env_name(field.name, prefix) for field in msgspec.structs.fields(cls))


def unknown_variables(
    cls: type[ServiceSettings], environ: Mapping[str, str], prefix: str = ENV_PREFIX
) -> list[str]:
    """``prefix`` variables in ``environ`` that ``cls`` does not read and that are not
    shared, each explained with the closest variable it does read."""
    known = known_variables(cls, prefix)
    problems = []
    for name in sorted(environ):
        if not name.startswith(prefix) or name in known or name in SHARED_VARIABLES:
            continue
        closest = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.0)
        hint = f" (the closest it reads is {closest[0]})" if closest else ""
        problems.append(f"{name} is not a setting of this service{hint}")
    return problems


def load(cls: type[S], environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX) -> S:
    """Build ``cls`` from the environment; unset variables keep the field defaults.

    Raises ``SettingsError`` for a value that does not fit its field and for any
    ``prefix`` variable that ``cls`` does not read (``SHARED_VARIABLES`` excepted).
    """
    env = os.environ if environ is None else environ
    unknown = unknown_variables(cls, env, prefix)
    if unknown:
        raise SettingsError(
            "Unknown settings: "
            + "; ".join(unknown)
            + ". Remove or rename them; settings this service does not read are refused."
        )
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
