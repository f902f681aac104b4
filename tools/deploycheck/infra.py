"""What a cluster would provide around the containers, on one loopback address.

The manifests name cluster hosts (``nats.nats.svc.cluster.local``, the collector, the
database, LiveKit); the check serves each of them on the port the manifest or Secret
says, on a loopback address of its own (so a server already on 127.0.0.1 does not
collide), and maps the names to that address in every container's ``/etc/hosts``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from switchboard.devstack.natsserver import find_binary
from switchboard.ops import natsconf as users_conf
from switchboard.ops import permissions
from switchboard.testing.certs import CertificateAuthority
from tools.deploycheck import natsconf

PERMISSIONS = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "nats" / "permissions.conf"
CANDIDATES = [f"127.0.0.{n}" for n in range(2, 64) if n != 53]
"""Loopback addresses to try (127.0.0.53 is often a local DNS resolver)."""


class InfraError(RuntimeError):
    """A server the check needs could not start."""


def free_on(address: str, ports: Iterable[int]) -> bool:
    for port in ports:
        with socket.socket() as sock:
            # As servers bind: connections of an earlier run in TIME_WAIT do not count.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def pick_address(ports: Iterable[int]) -> str:
    """A loopback address where every port in ``ports`` is free."""
    wanted = list(ports)
    for address in CANDIDATES:
        if free_on(address, wanted):
            return address
    raise InfraError(f"No loopback address with ports {wanted} free.")


def wait_listening(address: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InfraError(f"exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection((address, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise InfraError(f"nothing listens on {address}:{port} after 20 s")


def nats_passwords(password: Callable[[str], str]) -> dict[str, str]:
    """``SB_NATS_PASSWORD_<USER>`` for every generated NATS user."""
    return {users_conf.password_variable(u.user): password(u.user) for u in permissions.table()}


def start_nats(
    *,
    address: str,
    port: int,
    hostname: str,
    replicas: int,
    ca: CertificateAuthority,
    passwords: Mapping[str, str],
    workdir: Path,
) -> list[subprocess.Popen[bytes]]:
    """nats-server as the chart runs it: ``replicas`` servers in a cluster (routes over
    mutual TLS) when streams are replicated, the chart's client TLS block (a certificate
    for ``hostname``), JetStream as in production, and the generated users reading
    ``passwords`` from the environment. Clients reach the first server on ``port``."""
    client_files = ca.write(workdir, "nats-server", ca.issue("nats", dns_names=[hostname]))
    route_files = ca.write(
        workdir, "nats-route", ca.issue("nats-route", ip_addresses=[address], client=True)
    )
    route_ports = [free_port(address) for _ in range(replicas)] if replicas > 1 else []
    routes = tuple(f"tls://{address}:{p}" for p in route_ports)
    included = workdir / PERMISSIONS.name
    shutil.copyfile(PERMISSIONS, included)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_NATS_PASSWORD_")}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(max(1, replicas)):
            name = f"nats-{index}"
            listen_port = port if index == 0 else free_port(address)
            node = (
                natsconf.Node(name, f"{address}:{route_ports[index]}", routes, route_files)
                if route_ports
                else None
            )
            config = workdir / f"{name}.conf"
            config.write_text(
                natsconf.render(
                    client_files,
                    listen=f"{address}:{listen_port}",
                    store_dir=workdir / "jetstream" / name,
                    permissions=included,
                    node=node,
                )
            )
            log = workdir / f"{name}.log"
            process = subprocess.Popen(
                [find_binary(), "-c", str(config)],
                env={**env, **passwords},
                stdout=subprocess.DEVNULL,
                stderr=log.open("wb"),
            )
            processes.append(process)
            try:
                wait_listening(address, listen_port, process, log)
            except InfraError as exc:
                raise InfraError(f"nats-server {name} {exc}") from None
    except BaseException:
        stop_all(processes)
        raise
    return processes


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
