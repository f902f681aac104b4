"""Decoding consent commands from the stream: a ``RecordConsent`` or the reason it is not.

Reasons are stored and logged, so values from the body are never echoed into them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

import msgspec

from switchboard.contracts.base import personal_fields
from switchboard.contracts.consent import RecordConsent
from switchboard.contracts.subjects import consent_record_subject

_decoder = msgspec.json.Decoder(RecordConsent)
_PERSONAL = personal_fields(RecordConsent)

MAX_CLOCK_AHEAD = dt.timedelta(minutes=5)
"""How far ahead of the ledger's clock a decision may be: producers' clock skew."""
MAX_COMMAND_AGE = dt.timedelta(days=30)
"""How old a decision may be when it reaches the ledger. Commands wait in the stream
while the ledger or its database is down; a month is far past any outage the ledger
would sit out, and an older command is kept as a dead letter, not lost."""
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Invalid:
    """A command that can never be applied."""

    reason: str


def _sanitize(text: str) -> str:
    # msgspec quotes offending values ("Invalid enum value 'x'"); keep the path, drop values.
    return _QUOTED.sub("'…'", text)[:MAX_REASON]


def _undecodable(exc: Exception) -> str:
    # The exception's own text can quote the body (UnicodeDecodeError holds it): name it.
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not valid UTF-8."
    if isinstance(exc, RecursionError):
        return "nested too deeply."
    return f"the decoder failed ({type(exc).__name__})."


def _has_nul(command: RecordConsent) -> bool:
    # PostgreSQL text cannot hold NUL; refuse it everywhere so both backends agree.
    for value in msgspec.structs.astuple(command):
        if isinstance(value, str) and "\x00" in value:
            return True
    return False


def _unprintable_field(command: RecordConsent) -> str | None:
    """The first field outside the personal data that holds a control or format character
    (ANSI escapes, a newline, a right-to-left override): auditors read these fields on
    terminals and in reports. The contract's patterns keep most out; Python's ``$``
    accepts a trailing newline, which this catches."""
    for field in msgspec.structs.fields(command):
        if field.name in _PERSONAL:
            continue
        value = getattr(command, field.name)
        if isinstance(value, str) and any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
            return field.name
    return None


def _implausible_time(decided_at: dt.datetime, now: dt.datetime) -> str | None:
    if decided_at > now + MAX_CLOCK_AHEAD:
        ahead = MAX_CLOCK_AHEAD.total_seconds() / 60
        return f"decided_at is more than {ahead:g} minutes ahead of the ledger's clock."
    if decided_at < now - MAX_COMMAND_AGE:
        return f"decided_at is more than {MAX_COMMAND_AGE.days} days before the ledger's clock."
    return None


def decode_command(body: bytes, subject: str, now: dt.datetime) -> RecordConsent | Invalid:
    """Decode and check one command body received on ``subject`` when the ledger's clock
    says ``now``."""
    try:
        command = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        return Invalid(f"Invalid RecordConsent: {_sanitize(str(exc))}")
    except msgspec.DecodeError as exc:
        return Invalid(f"Undecodable command: {_sanitize(str(exc))}")
    except Exception as exc:
        # Not only msgspec's own errors: invalid UTF-8 inside a string raises
        # UnicodeDecodeError, deep nesting RecursionError. Whatever a body makes the
        # decoder raise, it is that body's fault: a dead letter, never a dead ingest loop.
        return Invalid(f"Undecodable command: {_undecodable(exc)}")
    try:
        # Valid RFC 3339 can still be out of range in UTC (0001-01-01T00:00:00+05:00):
        # found here, it is a dead letter; found in the append, it failed the batch.
        decided_at = command.decided_at.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return Invalid("decided_at is out of range once converted to UTC.")
    implausible = _implausible_time(decided_at, now)
    if implausible is not None:
        return Invalid(implausible)
    unprintable = _unprintable_field(command)
    if unprintable is not None:
        return Invalid(
            f"Invalid RecordConsent: a control or format character - at `$.{unprintable}`"
        )
    if subject != consent_record_subject(command.call_id):
        return Invalid("The command's call_id does not match the subject it was published on.")
    if _has_nul(command):
        return Invalid("The command contains a NUL character in a text field.")
    return command
