"""Personal data on the bus: a caller reference instead of the number, and sealed fields.

Events are kept on ``SB_EVENTS`` for 30 days and copied into every CRM and webhook that
consumes them, so erasing a caller in the ledger alone would leave their number and words
in all those copies. Events therefore never carry personal data in the clear:

- ``caller_ref`` names the caller: the consent ledger's random pseudonym for them, the same
  on every call of theirs until they are erased (a CRM joins a caller's calls on it without
  learning the number; after erasure a new call gets a new one).
- the event's personal fields (those marked ``x-personal-data``) travel as one
  ``SealedFields``: their JSON object encrypted with AES-256-GCM under a data key derived
  from the caller's key in the ledger. ``sb.consent.erase`` destroys that key, and with it
  every copy of the fields, wherever the events went (crypto-shredding).
- ``withheld`` names personal fields the producer left out because it could not seal them
  (the ledger did not answer): it never publishes them in the clear instead.

An authorised consumer (the CRM of record) opens a sealed value with ``sb.consent.unseal``
while the key exists; afterwards the ledger answers ``ErrorCode.ERASED``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

from switchboard.contracts.base import (
    PERSONAL_DATA_KEY,
    CallId,
    Message,
    PhoneNumber,
)

CallerRef = Annotated[
    str,
    msgspec.Meta(
        min_length=36,
        max_length=36,
        pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="The consent ledger's pseudonym for a caller (a random UUID): the same "
        "on each of their calls until they are erased; never derived from the number.",
    ),
]
"""The fixed length keeps a trailing newline out without a lookahead in the pattern."""


_PERSONAL = {PERSONAL_DATA_KEY: True}


class SealedFields(msgspec.Struct, frozen=True, kw_only=True):
    """An event's personal fields, sealed under the caller's data key.

    ``ciphertext`` is AES-256-GCM (tag appended) over the JSON object of the fields, with
    ``nonce`` and the additional data ``"switchboard-sealed-v1\\n" + caller_ref``; the key
    is the caller's event key in the consent ledger, which erasure destroys. Open it with
    ``sb.consent.unseal``.
    """

    alg: Annotated[
        Literal["A256GCM"],
        msgspec.Meta(description="AES-256-GCM, 16-byte tag appended to the ciphertext."),
    ] = "A256GCM"
    caller_ref: CallerRef
    """The key id: whose key sealed it."""
    nonce: Annotated[
        bytes, msgspec.Meta(min_length=12, max_length=12, description="96-bit nonce (base64).")
    ]
    ciphertext: Annotated[
        bytes,
        msgspec.Meta(
            max_length=65536,
            description="AES-256-GCM ciphertext and tag (base64) of the JSON object of the "
            'event\'s personal fields; additional data "switchboard-sealed-v1\\n" + caller_ref.',
        ),
    ]


class Sealable(Message, kw_only=True):
    """The attributes of an event whose payload has personal fields (see module doc)."""

    caller_ref: CallerRef | None = None
    """The caller's reference; none when the ledger could not be asked."""
    sealed: Annotated[
        SealedFields | None,
        msgspec.Meta(
            description="This event's personal fields, sealed under the caller's key; open "
            "with sb.consent.unseal while the key exists. Personal data (encrypted).",
            extra_json_schema=_PERSONAL,
        ),
    ] = None
    """The personal fields of this event, sealed; their plain fields are left empty (in a
    nested struct such as ``context``, only its personal fields: the intent stays). Still
    personal data, if unreadable without the key: a webhook endpoint that drops personal
    data drops this too."""
    withheld: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=64)]],
        msgspec.Meta(
            description="Personal fields left out, not sealed, because the consent ledger "
            "did not answer (dotted when nested: context.summary)."
        ),
    ] = msgspec.field(default_factory=list)
    """Personal fields left out, not sealed, because the ledger was unreachable (dotted
    for nested ones: ``context.summary``)."""


class GetCallerKey(Message):
    """Request (``sb.consent.caller_key``): the caller's event data key, made on first use.

    Only the voice worker may ask: it seals the personal fields of its events with it.
    """

    call_id: CallId
    caller_number: PhoneNumber | None = None
    """The caller; without one (a web call) the key belongs to the call."""


class CallerKey(Message):
    """Reply to ``GetCallerKey``."""

    caller_ref: CallerRef
    key: Annotated[
        bytes,
        msgspec.Meta(
            min_length=32,
            max_length=32,
            description="AES-256 key (base64). Secret: hold it in memory for the call only.",
            extra_json_schema=_PERSONAL,
        ),
    ]


class OpenSealed(Message):
    """Request (``sb.consent.unseal``): open one sealed value while its key exists."""

    sealed: SealedFields


class SealedOpened(Message):
    """Reply to ``OpenSealed``: the sealed fields by name, as the event would have held
    them (``restore_fields`` puts them back into the payload)."""

    caller_ref: CallerRef
    fields: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="The event's personal fields, by name. Personal data.",
            extra_json_schema=_PERSONAL,
        ),
    ]


S = TypeVar("S", bound=msgspec.Struct)


def restore_fields(payload: S, fields: dict[str, Any]) -> S:
    """``payload`` with opened personal fields put back (checked against its type);
    a nested struct's fields go back into it (``context.summary``)."""
    merged = _merge(msgspec.to_builtins(payload), fields)
    merged.pop("sealed", None)
    return msgspec.convert(merged, type(payload))


def _merge(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in fields.items():
        held = out.get(name)
        # A sealed field emptied to {} (``collected``) takes the value whole.
        if isinstance(value, dict) and isinstance(held, dict) and held:
            out[name] = _merge(held, value)
        else:
            out[name] = value
    return out
