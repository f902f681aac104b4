"""Personal data in the ledger: sealed with a per-caller key that erasure destroys.

The ledger secret (a file outside the database) yields, through HKDF, a key for the
caller hash and a key that wraps per-caller keys. A caller's records carry a random
pseudonym (``subject``) and their personal data (number, transcript excerpt) encrypted
with AES-256-GCM under the caller's key. The key table maps ``HMAC(number)`` to the
pseudonym and the wrapped key; deleting that row makes the data unreadable and unlinks
the pseudonym from the number, while the chained ciphertext stays as it was.
"""

from __future__ import annotations

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
KEY_BYTES = 32
NONCE_BYTES = 12
SUBJECT_BYTES = 16


class Personal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The personal data of one record, as sealed."""

    caller_number: str | None = None
    transcript_excerpt: str | None = None


class SealError(ValueError):
    """Sealed data or a wrapped key failed authentication (wrong key or tampered)."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Personal)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"switchboard-consent/" + purpose
    ).derive(secret)


class Entropy:
    """Random bytes for one append, read from the OS in one call: reading them key by
    key, nonce by nonce took longer than the encryption. Each byte is handed out once."""

    def __init__(self, size: int) -> None:
        self._pool = os.urandom(size)
        self._at = 0

    def take(self, n: int) -> bytes:
        at = self._at
        if at + n > len(self._pool):  # more than was planned for
            return os.urandom(n)
        self._at = at + n
        return self._pool[at : at + n]


def _random(n: int, entropy: Entropy | None) -> bytes:
    return entropy.take(n) if entropy is not None else os.urandom(n)


def _encrypt(cipher: AESGCM, plaintext: bytes, aad: bytes, entropy: Entropy | None = None) -> bytes:
    nonce = _random(NONCE_BYTES, entropy)
    return nonce + cipher.encrypt(nonce, plaintext, aad)


def _decrypt(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise SealError("Sealed data did not authenticate.") from None


class LedgerSecret:
    """Keys derived from the ledger secret file."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_BYTES:
            raise KeyFileError(f"The ledger secret must be at least {SECRET_BYTES} bytes.")
        self._ref_key = _derive(secret, b"subject-ref")
        # Cipher objects are made once: an append wraps or unwraps one key per caller.
        self._wrap = AESGCM(_derive(secret, b"key-wrap"))
        self._dead_letter = AESGCM(_derive(secret, b"dead-letter"))

    @classmethod
    def from_file(cls, path: Path, generate: bool) -> LedgerSecret:
        return cls(read_or_create(path, generate, lambda: os.urandom(SECRET_BYTES)))

    def subject_ref(self, caller_number: str | None, call_id: str) -> str:
        """The key-table id of the person a record is about: a keyed hash of the number
        (of the call when there is no number), so a stolen database reveals no numbers."""
        name = f"caller:{normalize_number(caller_number)}" if caller_number else f"call:{call_id}"
        return hmac.digest(self._ref_key, name.encode(), "sha256").hex()

    def new_key(self, entropy: Entropy | None = None) -> bytes:
        """A fresh AES-256 key for one person."""
        return _random(KEY_BYTES, entropy)

    def wrap(self, key: bytes, ref: str, entropy: Entropy | None = None) -> bytes:
        return _encrypt(self._wrap, key, ref.encode(), entropy)

    def unwrap(self, wrapped: bytes, ref: str) -> bytes:
        return _decrypt(self._wrap, wrapped, ref.encode())

    def seal_dead_letter(self, body: bytes) -> bytes:
        """A dead-lettered body may hold personal data: keep it, but only encrypted."""
        return _encrypt(self._dead_letter, body, b"dead-letter")

    def open_dead_letter(self, sealed: bytes) -> bytes:
        return _decrypt(self._dead_letter, sealed, b"dead-letter")


def new_subject(entropy: Entropy | None = None) -> str:
    """A random pseudonym: UUID4 text, made without building a ``uuid.UUID`` (3x faster)."""
    raw = bytearray(_random(SUBJECT_BYTES, entropy))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SubjectCipher:
    """One caller's key, ready to seal and open that caller's records (made once per
    caller per append, not once per record)."""

    def __init__(self, key: bytes) -> None:
        try:
            self._cipher = AESGCM(key)
        except ValueError:
            raise SealError("Not a usable key.") from None

    def seal(self, command_id: str, personal: Personal, entropy: Entropy | None = None) -> bytes:
        """Encrypt one record's personal data, bound to its command id."""
        return _encrypt(self._cipher, _encoder.encode(personal), command_id.encode(), entropy)

    def unseal(self, command_id: str, sealed: bytes) -> Personal:
        return _decoder.decode(_decrypt(self._cipher, sealed, command_id.encode()))


def event_key(key: bytes) -> bytes:
    """The key a caller's *events* are sealed with, derived from their ledger key: it goes
    out to the voice worker, so it must not open the ledger's own records (a different
    key), yet dies with the ledger key when the caller is erased."""
    return _derive(key, b"event-fields")


def seal(key: bytes, command_id: str, personal: Personal) -> bytes:
    """Encrypt one record's personal data, bound to its command id."""
    return SubjectCipher(key).seal(command_id, personal)


def unseal(key: bytes, command_id: str, sealed: bytes) -> Personal:
    return SubjectCipher(key).unseal(command_id, sealed)
