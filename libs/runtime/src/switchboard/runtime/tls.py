"""TLS for NATS connections: verify the server, present a client certificate.

A connection uses TLS when a CA file is configured or a server URL says ``tls://``. It
then starts with the TLS handshake, before any NATS protocol byte: nats-py otherwise
sends its CONNECT (with the password) in clear text to any server whose INFO does not
ask for TLS, so an impostor on the network could read the credentials. The servers
accept this with ``handshake_first`` in their ``tls`` block (see the NATS Helm values).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from switchboard.runtime.settings import ServiceSettings, SettingsError, env_name

TLS_SCHEME = "tls://"


def uses_tls(settings: ServiceSettings) -> bool:
    """Whether connections to the settings' servers must be encrypted."""
    return bool(settings.nats_tls_ca_file) or any(
        url.startswith(TLS_SCHEME) for url in settings.servers
    )


def client_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """The TLS context for NATS, or ``None`` for a plain connection.

    The server must present a certificate for the URL's host name signed by the
    configured CA (the system's CAs when none is set). With a client certificate and key
    the server can verify this process too (mutual TLS).
    """
    ca, cert, key = (
        settings.nats_tls_ca_file,
        settings.nats_tls_cert_file,
        settings.nats_tls_key_file,
    )
    if bool(cert) != bool(key):
        raise SettingsError(
            f"{env_name('nats_tls_cert_file')} and {env_name('nats_tls_key_file')} "
            "are set together or not at all."
        )
    if not uses_tls(settings):
        if cert:
            raise SettingsError(
                f"A client certificate is set but no CA ({env_name('nats_tls_ca_file')}) "
                "and no tls:// URL: the connection would not use TLS."
            )
        return None
    for variable, path in (
        ("nats_tls_ca_file", ca),
        ("nats_tls_cert_file", cert),
        ("nats_tls_key_file", key),
    ):
        if path and not Path(path).is_file():
            raise SettingsError(f"{env_name(variable)}: {path} is not a readable file.")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(cert, key)
    return context
