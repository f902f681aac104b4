"""Sealing an event's personal fields under the caller's data key, and opening them.

The format is ``switchboard.contracts.sealed.SealedFields``: AES-256-GCM over the JSON
object of the payload's personal fields (those marked ``x-personal-data``), bound to the
caller's reference. The voice worker seals with the key the ledger gives it; the ledger
opens for authorised consumers. One implementation here so the two never drift.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, TypeVar

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from switchboard.contracts.base import personal_fields
from switchboard.contracts.sealed import Sealable, SealedFields

NONCE_BYTES = 12
_AAD_PREFIX = b"switchboard-sealed-v1\n"

P = TypeVar("P", bound=Sealable)
S = TypeVar("S", bound=msgspec.Struct)


class SealedFieldsError(ValueError):
    """A sealed value did not authenticate under the key (wrong key or altered)."""


@cache
def _personal_defaults(cls: type[msgspec.Struct]) -> dict[str, tuple[str, Any]]:
    """The personal fields of ``cls`` (by attribute name: wire name and the empty value
    each is left with when sealed or withheld; every one has a default, which a contract
    test checks)."""
    names = personal_fields(cls)
    out: dict[str, tuple[str, Any]] = {}
    for field in msgspec.structs.fields(cls):
        if field.encode_name not in names:
            continue
        if field.default is not msgspec.NODEFAULT:
            out[field.name] = (field.encode_name, field.default)
        elif field.default_factory is not msgspec.NODEFAULT:
            out[field.name] = (field.encode_name, field.default_factory)
        else:
            raise TypeError(f"{cls.__name__}.{field.name} is personal but has no default.")
    return out


def _empty(default: Any) -> Any:
    return default() if callable(default) else default


class Split(msgspec.Struct, frozen=True):
    """A struct's personal values taken out of it."""

    taken: dict[str, Any]
    """The personal values it held, by wire name (nested for a nested struct)."""
    paths: list[str]
    """Their names, dotted for nested ones (``context.summary``)."""
    rest: Any
    """The struct with them emptied."""


def split_personal(value: msgspec.Struct) -> Split:
    """Take the personal values out of ``value``.

    A nested struct with personal fields (a handoff context) keeps its other fields (the
    intent, the attempts) in the clear: only its own personal fields are taken out.
    """
    taken: dict[str, Any] = {}
    paths: list[str] = []
    emptied: dict[str, Any] = {}
    for name, (wire, default) in _personal_defaults(type(value)).items():
        held = getattr(value, name)
        if isinstance(held, msgspec.Struct) and personal_fields(type(held)):
            inner = split_personal(held)
            if inner.taken:
                taken[wire], emptied[name] = inner.taken, inner.rest
                paths.extend(f"{wire}.{path}" for path in inner.paths)
        elif held != _empty(default):
            taken[wire], emptied[name] = msgspec.to_builtins(held), _empty(default)
            paths.append(wire)
    return Split(taken, sorted(paths), msgspec.structs.replace(value, **emptied))


def personal_values(payload: msgspec.Struct) -> dict[str, Any]:
    """The payload's personal fields that hold something (by wire name, nested)."""
    return split_personal(payload).taken


def _aad(caller_ref: str) -> bytes:
    return _AAD_PREFIX + caller_ref.encode()


def seal(payload: P, caller_ref: str, key: bytes) -> P:
    """``payload`` with its personal fields sealed and emptied, and its caller reference."""
    split = split_personal(payload)
    sealed: SealedFields | None = None
    if split.taken:
        nonce = os.urandom(NONCE_BYTES)
        plain = msgspec.json.encode(split.taken)
        ciphertext = AESGCM(key).encrypt(nonce, plain, _aad(caller_ref))
        sealed = SealedFields(caller_ref=caller_ref, nonce=nonce, ciphertext=ciphertext)
    rest: P = split.rest
    return msgspec.structs.replace(rest, caller_ref=caller_ref, sealed=sealed, withheld=[])


def withhold(payload: P) -> P:
    """``payload`` without its personal fields, naming those it left out: what goes out
    when they cannot be sealed (never the plain values)."""
    split = split_personal(payload)
    rest: P = split.rest
    return msgspec.structs.replace(rest, sealed=None, withheld=split.paths)


def open_sealed(sealed: SealedFields, key: bytes) -> dict[str, Any]:
    """The fields a ``SealedFields`` holds; ``SealedFieldsError`` if it does not open."""
    try:
        plain = AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, _aad(sealed.caller_ref))
    except (InvalidTag, ValueError):
        raise SealedFieldsError("The sealed value did not authenticate.") from None
    opened = msgspec.json.decode(plain)
    if not isinstance(opened, dict):
        raise SealedFieldsError("The sealed value is not an object of fields.")
    return opened
