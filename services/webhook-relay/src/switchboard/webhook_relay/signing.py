"""Standard Webhooks signatures (https://www.standardwebhooks.com), pure functions.

The signed content is ``<webhook-id>.<webhook-timestamp>.<body>``; the signature is
HMAC-SHA256 with the endpoint's secret (``whsec_`` + base64 of the key bytes), sent as
``v1,<base64>`` in ``webhook-signature``. The id is the CloudEvent id, the same on every
attempt and on a replay, so a receiver de-duplicates on it; the timestamp is the time of
the attempt, because receivers refuse old ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

SECRET_PREFIX: Final = "whsec_"
ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64


class SecretError(ValueError):
    """A secret that is not ``whsec_`` + base64 of 24 to 64 bytes."""


def parse_secret(text: str) -> bytes:
    """The key bytes of a ``whsec_…`` secret."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise SecretError(f"A webhook secret starts with {SECRET_PREFIX!r}.")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise SecretError("A webhook secret is base64 after its prefix.") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise SecretError(f"A webhook secret holds {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes.")
    return key


def new_secret() -> str:
    """A fresh ``whsec_`` secret (32 random bytes) for a new endpoint."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(key, webhook_id, timestamp, body),
    }
