"""Rendered Kubernetes manifests: ``kubectl kustomize`` output as Python objects.

Only what the deployment check and the deploy tests read: the documents of an overlay,
its Deployments and ConfigMaps, and the service a container runs (``python -m MODULE``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

Doc = dict[str, Any]


def decode_all(text: str) -> list[Doc]:
    """The documents of a multi-document YAML stream (empty ones dropped)."""
    docs: list[Doc] = []
    for chunk in ("\n" + text).split("\n---"):
        if chunk.strip():
            doc = msgspec.yaml.decode(chunk)
            if doc:
                docs.append(doc)
    return docs


def render(directory: Path, kubectl: str = "kubectl") -> list[Doc]:
    """``kubectl kustomize DIRECTORY``, decoded."""
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return decode_all(out)


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def by_name(docs: Iterable[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


WORKLOAD_KINDS = ("Job", "Deployment")
"""What runs a container: the provisioning Job first (services need its streams)."""


def workloads(docs: Iterable[Doc]) -> dict[str, Doc]:
    """Every Job and Deployment by name, Jobs first."""
    return {name: d for kind in WORKLOAD_KINDS for name, d in by_name(docs, kind).items()}


def pod_spec(deployment: Doc) -> Doc:
    spec: Doc = deployment["spec"]["template"]["spec"]
    return spec


def module_of(container: Doc) -> str:
    """The module a container runs with ``python -m``: the service it is."""
    argv = [*container.get("command", []), *container.get("args", [])]
    if len(argv) < 3 or argv[0] != "python" or argv[1] != "-m":
        raise ValueError(f"Container {container['name']} does not run `python -m <module>`.")
    module: str = argv[2]
    return module
