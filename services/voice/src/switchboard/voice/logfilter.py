"""Keep livekit-agents' personal-data log extras out of our logs.

livekit-agents attaches transcripts and tool output to some log records under keys
starting with ``lk.pii.`` (e.g. ``lk.pii.user_input``). The shared redaction filter does
not know those keys, so the voice worker adds this one to every root handler.
"""

from __future__ import annotations

import logging

from switchboard.runtime.logs import REDACTED

PII_PREFIX = "lk.pii"


class LiveKitPiiFilter(logging.Filter):
    """Redacts ``lk.pii.*`` extras in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in list(record.__dict__):
            if key.startswith(PII_PREFIX):
                record.__dict__[key] = REDACTED
        return True


def install() -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(LiveKitPiiFilter())
