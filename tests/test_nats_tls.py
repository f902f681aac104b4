"""NATS over TLS the way production runs it, against a real nats-server.

The server's ``tls`` block comes from the Helm values (``tools.deploycheck.natsconf``):
mutual TLS, TLS-first. A service started through its entry point connects with its CA,
certificate and key and answers; a client without the CA, without a certificate, or
asking for another host name is refused; plain text is refused; and a service never
sends its password to a server that does not start TLS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from switchboard.devstack.launcher import ServiceProcess, provision
from switchboard.devstack.natsserver import NatsServer, free_port
from switchboard.runtime.bus import connect
from switchboard.runtime.settings import ServiceSettings, SettingsError
from switchboard.testing.certs import CertificateAuthority, TlsFiles
from tools.deploycheck import natsconf

HOST = "localhost"
"""The name in the server certificate; 127.0.0.1 is deliberately not in it."""
BOUND_S = 5.0


@dataclass
class TlsNats:
    server: NatsServer
    ca: CertificateAuthority
    client: TlsFiles
    workdir: Path

    @property
    def url(self) -> str:
        return f"tls://{HOST}:{self.server.port}"

    def settings(self, **overrides: str) -> ServiceSettings:
        base = ServiceSettings(
            nats_url=self.url,
            nats_tls_ca_file=str(self.client.ca),
            nats_tls_cert_file=str(self.client.cert),
            nats_tls_key_file=str(self.client.key),
        )
        return msgspec.structs.replace(base, **overrides)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.client.ca))
        context.load_cert_chain(self.client.cert, self.client.key)
        return context


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    workdir = tmp_path_factory.mktemp("tls-nats")
    ca = CertificateAuthority()
    server_files = ca.write(workdir, "server", ca.issue("nats", dns_names=[HOST]))
    client = ca.write(workdir, "client", ca.issue("escalation", server=False, client=True))
    port = free_port()
    config = workdir / "nats.conf"
    config.write_text(natsconf.render(server_files))
    server = NatsServer(port=port, store_dir=workdir / "js", config_file=config).start()
    try:
        running = TlsNats(server=server, ca=ca, client=client, workdir=workdir)
        # The provisioning step over mutual TLS, as the Kubernetes Job runs it.
        provision(
            running.url,
            {
                "SB_NATS_TLS_CA_FILE": str(client.ca),
                "SB_NATS_TLS_CERT_FILE": str(client.cert),
                "SB_NATS_TLS_KEY_FILE": str(client.key),
            },
        )
        yield running
    finally:
        server.stop()


def test_the_chart_values_ask_for_mutual_tls_and_tls_first(tls_nats: TlsNats) -> None:
    block = natsconf.client_tls(tls_nats.client)
    assert block["verify"] is True
    assert block["ca_file"] == str(tls_nats.client.ca)
    assert block["handshake_first"]


async def test_a_service_connects_with_its_certificate_and_answers(tls_nats: TlsNats) -> None:
    proc = ServiceProcess(
        "switchboard.escalation",
        "escalation",
        env={
            "SB_NATS_URL": tls_nats.url,
            "SB_NATS_TLS_CA_FILE": str(tls_nats.client.ca),
            "SB_NATS_TLS_CERT_FILE": str(tls_nats.client.cert),
            "SB_NATS_TLS_KEY_FILE": str(tls_nats.client.key),
        },
        log_path=tls_nats.workdir / "escalation.log",
    ).start()
    try:
        await proc.ready(tls_nats.url, tls=tls_nats.context(), tls_handshake_first=True)
        nc = await connect(tls_nats.settings(), "ops")
        try:
            reply = await nc.request("$SRV.PING.escalation", b"", timeout=BOUND_S)
            assert msgspec.json.decode(reply.data)["name"] == "escalation"
        finally:
            await nc.close()
    finally:
        code = await asyncio.to_thread(proc.stop)
    assert code == 0, (tls_nats.workdir / "escalation.log").read_text()


async def test_a_client_without_the_ca_is_refused(tls_nats: TlsNats) -> None:
    # The system's CAs do not know the cluster's CA: the server's certificate is rejected.
    settings = tls_nats.settings(nats_tls_ca_file="")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        await connect(settings, "ops", allow_reconnect=False)


async def test_a_client_without_a_certificate_is_refused(tls_nats: TlsNats) -> None:
    settings = tls_nats.settings(nats_tls_cert_file="", nats_tls_key_file="")
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        await connect(settings, "ops", allow_reconnect=False)


async def test_a_client_refuses_a_certificate_for_another_name(tls_nats: TlsNats) -> None:
    settings = tls_nats.settings(nats_url=f"tls://127.0.0.1:{tls_nats.server.port}")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"not valid for '127\.0\.0\.1'"):
        await connect(settings, "ops", allow_reconnect=False)


def test_plain_text_is_refused(tls_nats: TlsNats) -> None:
    with socket.create_connection(("127.0.0.1", tls_nats.server.port), timeout=BOUND_S) as sock:
        info = sock.makefile("rb").readline()
        assert info.startswith(b"INFO ")
        assert b'"tls_required":true' in info
        sock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        received = b""
        while chunk := sock.recv(4096):  # the server closes the connection
            received += chunk
    assert b"PONG" not in received


async def test_no_password_goes_to_a_server_that_does_not_start_tls(tls_nats: TlsNats) -> None:
    # An impostor speaking plain NATS: nats-py alone would send CONNECT with the password
    # because this INFO does not ask for TLS. TLS-first sends only a TLS ClientHello.
    received = bytearray()
    got_bytes = asyncio.Event()

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"server_id":"x","version":"2.10.0","max_payload":1048576}\r\n')
        await writer.drain()
        while chunk := await reader.read(4096):
            received.extend(chunk)
            got_bytes.set()
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = tls_nats.settings(
        nats_url=f"tls://{HOST}:{port}", nats_user="escalation", nats_password="s3cret-pw"
    )
    try:
        with pytest.raises((ssl.SSLError, OSError, TimeoutError)):
            await connect(settings, "escalation", allow_reconnect=False, connect_timeout=1)
        await asyncio.wait_for(got_bytes.wait(), BOUND_S)
    finally:
        server.close()
        await server.wait_closed()
    assert received[:1] == b"\x16"  # a TLS handshake record
    assert b"s3cret-pw" not in received
    assert b"CONNECT" not in received


def test_a_certificate_without_its_key_is_a_settings_error(tls_nats: TlsNats) -> None:
    from switchboard.runtime.tls import client_context

    with pytest.raises(SettingsError, match="SB_NATS_TLS_KEY_FILE"):
        client_context(tls_nats.settings(nats_tls_key_file=""))
