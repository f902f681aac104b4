"""Personal data in the ledger: sealed with a per-caller key that erasure destroys.

The ledger secret (a file outside the database) yields, through HKDF, a key for the
caller hash and a key that wraps per-caller keys. A caller's records carry a random
pseudonym (``subject``) and their personal data (number, transcript excerpt) encrypted
with AES-256-GCM under the caller's key. The key table maps ``HMAC(number)`` to the
pseudonym and the wrapped key; deleting that row makes the data unreadable and unlinks
the pseudonym from the number, while the chained ciphertext stays as it was.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from switchboard.consent.jurisdiction import normalize_number
from switchboard.consent.ledger.keyfiles import KeyFileError, read_or_create

SECRET_BYTES = 32
NONCE_BYTES = 12


class Personal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The personal data of one record, as sealed."""

    caller_number: str | None = None
    transcript_excerpt: str | None = None


class SealError(ValueError):
    """Sealed data or a wrapped key failed authentication (wrong key or tampered)."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"switchboard-consent/" + purpose
    ).derive(secret)


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise SealError("Sealed data did not authenticate.") from None


class LedgerSecret:
    """Keys derived from the ledger secret file."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_BYTES:
            raise KeyFileError(f"The ledger secret must be at least {SECRET_BYTES} bytes.")
        self._ref_key = _derive(secret, b"subject-ref")
        self._wrap_key = _derive(secret, b"key-wrap")
        self._dead_letter_key = _derive(secret, b"dead-letter")

    @classmethod
    def from_file(cls, path: Path, generate: bool) -> LedgerSecret:
        return cls(read_or_create(path, generate, lambda: os.urandom(SECRET_BYTES)))

    def subject_ref(self, caller_number: str | None, call_id: str) -> str:
        """The key-table id of the person a record is about: a keyed hash of the number
        (of the call when there is no number), so a stolen database reveals no numbers."""
        name = f"caller:{normalize_number(caller_number)}" if caller_number else f"call:{call_id}"
        return hmac.new(self._ref_key, name.encode(), hashlib.sha256).hexdigest()

    def new_key(self) -> bytes:
        return AESGCM.generate_key(bit_length=256)

    def wrap(self, key: bytes, ref: str) -> bytes:
        return _encrypt(self._wrap_key, key, ref.encode())

    def unwrap(self, wrapped: bytes, ref: str) -> bytes:
        return _decrypt(self._wrap_key, wrapped, ref.encode())

    def seal_dead_letter(self, body: bytes) -> bytes:
        """A dead-lettered body may hold personal data: keep it, but only encrypted."""
        return _encrypt(self._dead_letter_key, body, b"dead-letter")

    def open_dead_letter(self, sealed: bytes) -> bytes:
        return _decrypt(self._dead_letter_key, sealed, b"dead-letter")


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Personal)


def seal(key: bytes, command_id: str, personal: Personal) -> bytes:
    """Encrypt one record's personal data, bound to its command id."""
    return _encrypt(key, _encoder.encode(personal), command_id.encode())


def unseal(key: bytes, command_id: str, sealed: bytes) -> Personal:
    return _decoder.decode(_decrypt(key, sealed, command_id.encode()))
