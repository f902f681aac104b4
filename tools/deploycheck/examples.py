"""The checked-in example Secrets, with generated values for their ``${...}`` placeholders.

``deploy/k8s/examples/secrets.yaml`` lists every Secret an install provides; its values
are examples or placeholders (see the file's header). ``materialise`` turns it into what
Kubernetes would hold: Secret name → key → bytes.
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.ops.natsconf import new_password
from switchboard.testing.certs import CertificateAuthority, Issued
from tools.deploycheck.manifests import Doc, decode_all, of_kind

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "examples" / "secrets.yaml"
PLACEHOLDER = re.compile(r"\$\{([a-z0-9-]+)(?::([A-Za-z0-9._-]+))?\}")
SecretData = dict[str, dict[str, bytes]]


class ExampleError(ValueError):
    """The example file uses a placeholder this module cannot fill."""


class Generated:
    """The values of one run: a random password per name, one CA and its certificates."""

    def __init__(self, ca: CertificateAuthority | None = None) -> None:
        self.ca = ca or CertificateAuthority("Switchboard deploy-check CA")
        self._passwords: dict[str, str] = {}
        self._clients: dict[str, Issued] = {}
        self._ed25519: str | None = None

    def password(self, name: str) -> str:
        if name not in self._passwords:
            self._passwords[name] = new_password()
        return self._passwords[name]

    def client(self, name: str) -> Issued:
        """A client certificate for ``name`` (mutual TLS)."""
        if name not in self._clients:
            self._clients[name] = self.ca.issue(name, server=False, client=True)
        return self._clients[name]

    def ed25519_pem(self) -> str:
        if self._ed25519 is None:
            self._ed25519 = (
                Ed25519PrivateKey.generate()
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                .decode()
            )
        return self._ed25519

    def fill(self, kind: str, arg: str | None) -> str:
        """The value of ``${kind:arg}``."""
        if kind == "password" and arg:
            return self.password(arg)
        if kind == "random-base64" and arg and arg.isdigit():
            return base64.b64encode(secrets.token_bytes(int(arg))).decode()
        if kind == "ed25519-pem" and arg is None:
            return self.ed25519_pem()
        if kind == "ca-crt" and arg is None:
            return self.ca.cert_pem.decode()
        if kind == "tls-crt" and arg:
            return self.client(arg).cert.decode()
        if kind == "tls-key" and arg:
            return self.client(arg).key.decode()
        raise ExampleError(f"Unknown placeholder ${{{kind}{':' + arg if arg else ''}}}.")


def load(path: Path = EXAMPLE) -> list[Doc]:
    """The example Secrets, placeholders unfilled."""
    return of_kind(decode_all(path.read_text()), "Secret")


def keys(docs: list[Doc]) -> dict[str, set[str]]:
    """Secret name → its keys (what ``envFrom`` would define)."""
    return {
        d["metadata"]["name"]: set(d.get("data") or {}) | set(d.get("stringData") or {})
        for d in docs
    }


def _fill(text: str, generated: Generated) -> str:
    return PLACEHOLDER.sub(lambda m: generated.fill(m.group(1), m.group(2)), text)


def materialise(docs: list[Doc], generated: Generated) -> SecretData:
    """Secret name → key → bytes, as Kubernetes would store them."""
    out: SecretData = {}
    for doc in docs:
        data: dict[str, bytes] = {}
        encoded: dict[str, Any] = doc.get("data") or {}
        for key, value in encoded.items():
            data[key] = base64.b64decode(_fill(str(value), generated), validate=True)
        plain: dict[str, Any] = doc.get("stringData") or {}
        for key, value in plain.items():
            data[key] = _fill(str(value), generated).encode()
        out[doc["metadata"]["name"]] = data
    return out
