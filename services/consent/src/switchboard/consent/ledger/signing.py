"""Signed checkpoints: an Ed25519 signature over (sequence, head hash, time, key id).

A checkpoint held outside the database proves that nothing up to its sequence was
rewritten since it was signed. The signed bytes are a fixed prefix and a sorted-key JSON
object, so a verifier needs only the public key and this description.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from switchboard.consent.ledger.chain import format_time
from switchboard.consent.ledger.keyfiles import KeyFileError, read_or_create
from switchboard.contracts.consent import LedgerCheckpoint

SIGNED_PREFIX = b"switchboard-consent-checkpoint-v1\n"
_encoder = msgspec.json.Encoder(order="sorted")


def key_id_of(public_key: bytes) -> str:
    """A short, stable name for a public key (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def signed_bytes(sequence: int, head_hash: str, created_at: dt.datetime, key_id: str) -> bytes:
    body = {
        "sequence": sequence,
        "head_hash": head_hash,
        "created_at": format_time(created_at),
        "key_id": key_id,
    }
    return SIGNED_PREFIX + _encoder.encode(body)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class CheckpointSigner:
    """Signs checkpoints with the ledger's Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = _raw_public(private_key.public_key())
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def from_file(cls, path: Path, generate: bool) -> CheckpointSigner:
        def make() -> bytes:
            return Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        key = serialization.load_pem_private_key(read_or_create(path, generate, make), None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"Key file {path} does not hold an Ed25519 private key.")
        return cls(key)

    def sign(self, sequence: int, head_hash: str, created_at: dt.datetime) -> LedgerCheckpoint:
        # Truncate to what the canonical time keeps, so the stored value verifies.
        created_at = created_at.astimezone(dt.UTC)
        signature = self._key.sign(signed_bytes(sequence, head_hash, created_at, self.key_id))
        return LedgerCheckpoint(
            sequence=sequence,
            head_hash=head_hash,
            created_at=created_at,
            key_id=self.key_id,
            signature=base64.b64encode(signature).decode(),
        )


def signature_valid(checkpoint: LedgerCheckpoint, public_keys: Mapping[str, bytes]) -> bool:
    """Whether ``checkpoint`` is signed by the trusted key it names."""
    raw = public_keys.get(checkpoint.key_id)
    if raw is None:
        return False
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        Ed25519PublicKey.from_public_bytes(raw).verify(
            signature,
            signed_bytes(
                checkpoint.sequence, checkpoint.head_hash, checkpoint.created_at, checkpoint.key_id
            ),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def load_public_key(path: Path) -> tuple[str, bytes]:
    """(key id, raw public key) from a PEM file holding an Ed25519 public or private key."""
    data = path.read_bytes()
    key: object
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = serialization.load_pem_private_key(data, None).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} does not hold an Ed25519 key.")
    raw = _raw_public(key)
    return key_id_of(raw), raw
