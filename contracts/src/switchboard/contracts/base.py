"""Base types shared by every Switchboard message.

Every message is a frozen msgspec ``Struct`` encoded as JSON. Unknown fields are ignored
on decode and new fields always get defaults, so a consumer built against an older
version of this package keeps decoding newer messages (msgspec's schema-evolution rules).

Fields that can hold personal data are typed with the aliases below. The marker ends up
in the exported JSON Schema as ``"x-personal-data": true`` so integrators can see it, and
``personal_fields`` lets the logging layer strip those fields before anything is logged.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec

PERSONAL_DATA_KEY = "x-personal-data"

_PERSONAL = {PERSONAL_DATA_KEY: True}

CallId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_-]{1,64}\Z",
        description="Call identifier; also the last token of event subjects, so it is "
        "limited to letters, digits, '-' and '_'.",
    ),
]
r"""A call id is safe to use as a NATS subject token, which is why its alphabet is fixed.

Patterns that must match a whole string end in ``\Z``: Python's ``$`` (which msgspec
validates with) also matches before a trailing newline. ``\Z`` is Python's alone, so the
schema exporter writes it as ``$``, which means the end of the string in JSON Schema's
ECMAScript dialect, RE2 (Go) and Rust's ``regex``: the same rule, in a form every one of
them compiles (no lookaround, no backreferences).
"""

E164_PATTERN = r"^\+[1-9][0-9]{1,14}\Z"

PhoneNumber = Annotated[
    str,
    msgspec.Meta(
        pattern=E164_PATTERN,
        max_length=16,
        description="A phone number in E.164 form (``+14155550123``). Personal data.",
        extra_json_schema=_PERSONAL,
    ),
]
PersonalText = Annotated[
    str,
    msgspec.Meta(
        max_length=4096,
        description="Free text that may contain personal data (transcript excerpt, "
        "summary, name, email).",
        extra_json_schema=_PERSONAL,
    ),
]
ShortText = Annotated[str, msgspec.Meta(max_length=512)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
LanguageTag = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z",
        max_length=35,
        description="A BCP 47 language tag (``en``, ``de-CH``).",
    ),
]


class Message(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Base class of every command, query, reply and event payload."""


def new_id() -> str:
    """Return a fresh unique id for commands and events (UUID4, hex with dashes)."""
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    """Return the current time in UTC; every timestamp on the wire is timezone-aware."""
    return dt.datetime.now(dt.UTC)


def personal_fields(cls: type[msgspec.Struct]) -> frozenset[str]:
    """Names of the fields of ``cls`` marked as personal data (directly, not nested)."""
    names: set[str] = set()
    info = msgspec.inspect.type_info(cls)
    if not isinstance(info, msgspec.inspect.StructType):
        return frozenset()
    for field in info.fields:
        if _is_personal(field.type):
            names.add(field.encode_name)
    return frozenset(names)


def _is_personal(t: msgspec.inspect.Type, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a field type holds personal data, looking through unions, containers and
    nested structs (a struct that carries personal data is personal as a whole)."""
    extra: dict[str, Any] | None = getattr(t, "extra_json_schema", None)
    if extra and extra.get(PERSONAL_DATA_KEY):
        return True
    if isinstance(t, msgspec.inspect.Metadata):
        return _is_personal(t.type, seen)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_is_personal(x, seen) for x in t.types)
    if isinstance(t, msgspec.inspect.ListType | msgspec.inspect.TupleType):
        inner = t.item_type if isinstance(t, msgspec.inspect.ListType) else None
        return inner is not None and _is_personal(inner, seen)
    if isinstance(t, msgspec.inspect.DictType):
        return _is_personal(t.value_type, seen)
    if isinstance(t, msgspec.inspect.StructType) and t.cls not in seen:
        return any(_is_personal(f.type, seen | {t.cls}) for f in t.fields)
    return False
