"""The endpoints file: where events go, signed with which secret, filtered how.

```toml
[[endpoints]]
name = "acme"                           # one subject token; the consumer is webhook-acme
url = "https://crm.example.com/hooks/switchboard"
secret_file = "/etc/switchboard/webhooks/acme"   # holds whsec_…
events = ["call.*", "case.*"]           # domain.name patterns; default: every event
drop_personal_data = true               # remove fields the contracts mark personal
give_up_after_s = 3600                  # else SB_WEBHOOK_GIVE_UP_S
start = "new"                           # a new consumer starts at "new" events or "all"
```
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from switchboard.contracts.envelope import EVENTS
from switchboard.contracts.subjects import EVENTS_PREFIX, EVENTS_WILDCARD
from switchboard.webhook_relay.signing import SecretError, parse_secret

_PATTERN = re.compile(r"^([a-z_]+|\*)\.([a-z_]+|\*)$")


class EndpointsError(ValueError):
    """The endpoints file is missing, not TOML, or does not match the format."""


class _Endpoint(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,48}$")]
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://")]
    secret_file: str
    events: list[str] = msgspec.field(default_factory=lambda: ["*.*"])
    drop_personal_data: bool = False
    give_up_after_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    start: Literal["new", "all"] = "new"


class _File(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    endpoints: list[_Endpoint]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One configured receiver."""

    name: str
    url: str
    key: bytes
    subjects: tuple[str, ...]
    """The consumer's filter subjects (one per event pattern)."""
    drop_personal_data: bool
    give_up_after_s: float
    start: Literal["new", "all"]

    def __repr__(self) -> str:  # never the key
        return f"Endpoint(name={self.name!r}, url={self.url!r})"


def filter_subjects(patterns: list[str]) -> tuple[str, ...]:
    """Event patterns (``call.*``, ``case.credit_granted``, ``*.*``) as stream subjects."""
    if not patterns:
        raise EndpointsError("An endpoint's events list must not be empty.")
    out: list[str] = []
    known = {(e.domain, e.name) for e in EVENTS}
    for pattern in patterns:
        match = _PATTERN.match(pattern)
        if match is None:
            raise EndpointsError(f"{pattern!r} is not an event pattern like 'call.*'.")
        domain, name = match.groups()
        if not any(domain in ("*", d) and name in ("*", n) for d, n in known):
            raise EndpointsError(f"{pattern!r} matches no event type.")
        if (domain, name) == ("*", "*"):
            return (EVENTS_WILDCARD,)
        out.append(f"{EVENTS_PREFIX}.{domain}.{name}.*")
    return tuple(dict.fromkeys(out))


def load_endpoints(path: str, default_give_up_s: float) -> list[Endpoint]:
    """Read and check the endpoints file and each endpoint's secret."""
    if not path:
        raise EndpointsError("No endpoints file: set SB_WEBHOOK_ENDPOINTS_FILE.")
    try:
        raw = msgspec.convert(tomllib.loads(Path(path).read_text("utf-8")), _File)
    except OSError as exc:
        raise EndpointsError(f"Cannot read the endpoints file {path}: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise EndpointsError(f"The endpoints file {path} is not valid TOML: {exc}.") from None
    except msgspec.ValidationError as exc:
        raise EndpointsError(f"The endpoints file {path} is invalid: {exc}.") from None
    if not raw.endpoints:
        raise EndpointsError(f"The endpoints file {path} lists no endpoint.")
    names = [e.name for e in raw.endpoints]
    if len(set(names)) != len(names):
        raise EndpointsError(f"Endpoint names must be unique: {names}.")
    return [_endpoint(e, default_give_up_s) for e in raw.endpoints]


def _endpoint(raw: _Endpoint, default_give_up_s: float) -> Endpoint:
    try:
        key = parse_secret(Path(raw.secret_file).read_text("utf-8"))
    except OSError as exc:
        raise EndpointsError(
            f"Cannot read the secret of endpoint {raw.name}: {exc.strerror}."
        ) from None
    except SecretError as exc:
        raise EndpointsError(f"The secret of endpoint {raw.name} is invalid: {exc}") from None
    return Endpoint(
        name=raw.name,
        url=raw.url,
        key=key,
        subjects=filter_subjects(raw.events),
        drop_personal_data=raw.drop_personal_data,
        give_up_after_s=raw.give_up_after_s or default_give_up_s,
        start=raw.start,
    )
