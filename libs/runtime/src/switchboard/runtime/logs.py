"""Structured JSON logging that keeps personal data out of log records.

Log messages are constant sentences; variable facts go in ``extra``. Any ``extra`` key
that names a personal-data field of a contract (``caller_number``, ``transcript_excerpt``,
...) or a well-known personal key is replaced by ``"[redacted]"`` before formatting, so
a careless ``extra={"caller_number": n}`` cannot leak a number into the logs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

import msgspec

from switchboard.contracts import envelope, registry
from switchboard.contracts.base import personal_fields

REDACTED = "[redacted]"
_GENERIC_PERSONAL = frozenset(
    {
        "phone",
        "phone_number",
        "number",
        "caller",
        "name",
        "email",
        "address",
        "shipping_address",
        "transcript",
        "text",
        "utterance",
        "summary",
        "whisper",
        "sip_call_to",
    }
)
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def _contract_personal_keys() -> frozenset[str]:
    keys: set[str] = set()
    for t in registry.message_types():
        for cls in getattr(t, "__args__", (t,)):
            if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
                keys |= personal_fields(cls)
    for spec in envelope.EVENTS:
        keys |= personal_fields(spec.payload)
    return frozenset(keys)


PERSONAL_KEYS: frozenset[str] = _contract_personal_keys() | _GENERIC_PERSONAL


class PersonalDataFilter(logging.Filter):
    """Redacts personal-data extras in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in list(record.__dict__):
            if key in PERSONAL_KEYS and key not in _STANDARD_ATTRS:
                record.__dict__[key] = REDACTED
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, service and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(service: str, level: str = "INFO", stream: Any = None) -> None:
    """Route the root logger to JSON lines on stderr with personal data redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # nats-py logs reconnect chatter at INFO; keep ours readable.
    logging.getLogger("nats").setLevel(logging.WARNING)


def exception_facts(exc: BaseException) -> dict[str, str]:
    """``extra`` for logging an unexpected exception without its text: the type and where
    it was raised (file, line, code), never the message, which may quote the input that
    caused it (a caller's number in a ``UnicodeDecodeError``, a value in a ``KeyError``)."""
    import traceback

    return {
        "error_type": type(exc).__name__,
        "traceback": "".join(traceback.format_tb(exc.__traceback__)),
    }
