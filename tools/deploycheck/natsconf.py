"""A nats-server configuration laid out like the one the official Helm chart renders.

The chart builds ``nats.conf`` from ``deploy/k8s/nats/values.yaml``: the client ``tls``
block from ``config.nats.tls`` (certificate and key from its Secret, ``ca_file`` from
``tlsCA``, then ``merge``), JetStream with ``config.merge.jetstream``, and the generated
users through ``$include``. Local servers (the deployment check, the TLS test) use this
module so they enforce what production enforces, with local file paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from switchboard.testing.certs import TlsFiles

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "nats" / "values.yaml"


def values(path: Path = VALUES) -> dict[str, Any]:
    loaded: dict[str, Any] = msgspec.yaml.decode(path.read_bytes())
    return loaded


def client_tls(files: TlsFiles, chart: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``tls`` block of the client port, as the chart renders it from the values."""
    chart = values() if chart is None else chart
    tls = chart["config"]["nats"]["tls"]
    if not (tls.get("enabled") and tls.get("secretName")):
        raise ValueError("The NATS values do not enable TLS on the client port.")
    block: dict[str, Any] = {"cert_file": str(files.cert), "key_file": str(files.key)}
    if chart.get("tlsCA", {}).get("enabled"):
        block["ca_file"] = str(files.ca)
    block.update(tls.get("merge", {}))
    return block


def cluster_tls(files: TlsFiles, chart: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``tls`` block of the routes between servers, as the chart renders it."""
    chart = values() if chart is None else chart
    tls = chart["config"]["cluster"]["tls"]
    if not (tls.get("enabled") and tls.get("secretName")):
        raise ValueError("The NATS values do not enable TLS between the servers.")
    block: dict[str, Any] = {"cert_file": str(files.cert), "key_file": str(files.key)}
    block.update(tls.get("merge", {}))
    if "ca_file" in block:
        block["ca_file"] = str(files.ca)  # the chart's mount path, here a local file
    return block


@dataclass(frozen=True, slots=True)
class Node:
    """One server of a local cluster: its name, route address and all routes."""

    name: str
    listen: str
    routes: tuple[str, ...]
    files: TlsFiles


def render(
    files: TlsFiles,
    *,
    listen: str | None = None,
    store_dir: Path | None = None,
    permissions: Path | None = None,
    node: Node | None = None,
    chart: dict[str, Any] | None = None,
) -> str:
    """A ``nats.conf`` with the chart's TLS and JetStream settings; ``listen`` (host:port)
    and ``store_dir`` when the command line does not give them, and the permissions file
    included as the chart includes it (it must sit next to the written config)."""
    chart = values() if chart is None else chart
    jetstream = dict(chart["config"]["merge"].get("jetstream", {}))
    if store_dir is not None:
        jetstream["store_dir"] = str(store_dir)
    lines = [
        f"jetstream: {json.dumps(jetstream)}",
        f"tls: {json.dumps(client_tls(files, chart))}",
    ]
    if listen is not None:
        lines.insert(0, f"listen: {json.dumps(listen)}")
    if node is not None:
        cluster = {
            "name": "nats",
            "listen": node.listen,
            "routes": list(node.routes),
            # Clients keep to the address they were given (the Service), as in the chart.
            "no_advertise": True,
            "tls": cluster_tls(node.files, chart),
        }
        lines += [f"server_name: {json.dumps(node.name)}", f"cluster: {json.dumps(cluster)}"]
    if permissions is not None:
        # nats-server resolves includes relative to the including file, as in the chart.
        lines.append(f"include {json.dumps(permissions.name)};")
    return "\n".join(lines) + "\n"
