"""Decoding consent commands from the stream: a ``RecordConsent`` or the reason it is not.

Reasons are stored and logged, so values from the body are never echoed into them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import msgspec

from switchboard.contracts.consent import RecordConsent
from switchboard.contracts.subjects import consent_record_subject

_decoder = msgspec.json.Decoder(RecordConsent)
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


def decode_command(body: bytes, subject: str) -> RecordConsent | Invalid:
    """Decode and check one command body received on ``subject``."""
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
        command.decided_at.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return Invalid("decided_at is out of range once converted to UTC.")
    if subject != consent_record_subject(command.call_id):
        return Invalid("The command's call_id does not match the subject it was published on.")
    if _has_nul(command):
        return Invalid("The command contains a NUL character in a text field.")
    return command
