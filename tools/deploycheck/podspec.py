"""A Deployment's pod spec as a ``podman run``: the same command, environment, user and
groups, root filesystem, capabilities, memory and volumes.

Anything in a pod spec this module does not translate is an error rather than ignored:
a check that silently dropped a field would pass a manifest it never ran as written.
The host side of Secret and ConfigMap volumes is written here the way the kubelet
writes it: one file per key, the volume's ``defaultMode``, group-owned by ``fsGroup``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.deploycheck.examples import SecretData
from tools.deploycheck.manifests import Doc, pod_spec

CHECK_SUFFIX = "-check"
"""Container (and host) names are ``<deployment>-check``, like a pod name."""

POD_KEYS = {
    "containers",
    "securityContext",
    "terminationGracePeriodSeconds",
    "volumes",
    "restartPolicy",  # a Job's; the check runs a Job once and requires exit code 0
}
POD_SECURITY_KEYS = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}
CONTAINER_KEYS = {
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "workingDir",
    "env",
    "envFrom",
    "ports",
    "readinessProbe",
    "livenessProbe",
    "resources",
    "securityContext",
    "volumeMounts",
}
CONTAINER_SECURITY_KEYS = {
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "capabilities",
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
}
DEFAULT_GRACE_S = 30
DEFAULT_MODE = 0o644
_QUANTITY = re.compile(r"^([0-9.]+)([A-Za-z]*)$")
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class Unsupported(ValueError):
    """The pod spec uses something the check cannot run as written."""


@dataclass(frozen=True, slots=True)
class Sources:
    """What ``envFrom``, ``valueFrom`` and volumes refer to."""

    config_maps: Mapping[str, Mapping[str, str]]
    secrets: SecretData


@dataclass(frozen=True, slots=True)
class HttpProbe:
    path: str
    port: int
    period_s: float


@dataclass
class ContainerRun:
    """One container of one Deployment, ready for ``podman run``."""

    deployment: str
    name: str
    image: str
    options: list[str]
    """``podman run`` options from the pod spec (the check adds its own, e.g. the network)."""
    argv: list[str]
    """What follows the image: the container's ``args`` (and ``command`` via --entrypoint)."""
    env: dict[str, str]
    """Passed through podman's own environment (``-e NAME``), so secrets stay out of argv."""
    grace_s: int
    readiness: HttpProbe | None = None
    ports: dict[str, int] = field(default_factory=dict)
    """Declared container ports by name: on the host network they must be free on the host."""
    files: list[tuple[Path, bytes, int]] = field(default_factory=list)
    directories: list[tuple[Path, int]] = field(default_factory=list)
    fs_group: int | None = None


def _only(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = set(spec) - allowed
    if extra:
        raise Unsupported(f"{where}: {sorted(extra)} not supported by the deployment check.")


def quantity(text: str | int | float) -> float:
    """A Kubernetes quantity (``512Mi``, ``1G``, ``100m``, ``2``) as a number."""
    raw = str(text)
    if raw.endswith("m") and raw[:-1].replace(".", "").isdigit():
        return float(raw[:-1]) / 1000
    match = _QUANTITY.match(raw)
    if match is None or match.group(2) not in _UNITS:
        raise Unsupported(f"Quantity {raw!r} not understood.")
    return float(match.group(1)) * _UNITS[match.group(2)]


def container_env(container: Doc, sources: Sources) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``envFrom`` in order, then
    ``env`` (later definitions win)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        _only(source, {"configMapRef", "secretRef", "prefix"}, "envFrom")
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            values: Mapping[str, str] | None = sources.config_maps.get(ref["name"])
        else:
            ref = source["secretRef"]
            data = sources.secrets.get(ref["name"])
            values = None if data is None else {k: v.decode() for k, v in data.items()}
        if values is None:
            if ref.get("optional"):
                continue
            raise Unsupported(f"envFrom {ref['name']}: no such ConfigMap or Secret.")
        env.update({prefix + key: value for key, value in values.items()})
    for item in container.get("env", []):
        _only(item, {"name", "value", "valueFrom"}, f"env {item.get('name')}")
        if "valueFrom" not in item:
            env[item["name"]] = str(item.get("value", ""))
            continue
        source = item["valueFrom"]
        _only(source, {"secretKeyRef", "configMapKeyRef"}, f"env {item['name']}")
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = sources.secrets.get(ref["name"], {})
            value = secret[ref["key"]].decode() if ref["key"] in secret else None
        else:
            ref = source["configMapKeyRef"]
            value = sources.config_maps.get(ref["name"], {}).get(ref["key"])
        if value is None:
            if ref.get("optional"):
                continue
            raise Unsupported(f"env {item['name']}: {ref['name']}/{ref['key']} does not exist.")
        env[item["name"]] = value
    return env


def _probe(container: Doc) -> HttpProbe | None:
    probe = container.get("readinessProbe")
    if probe is None:
        return None
    http = probe.get("httpGet")
    if http is None:
        raise Unsupported(f"{container['name']}: only httpGet readiness probes are supported.")
    port = http["port"]
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if port not in named:
            raise Unsupported(f"{container['name']}: probe port {port} is not a named port.")
        port = named[port]
    period = float(probe.get("periodSeconds", 10))
    return HttpProbe(path=http.get("path", "/"), port=int(port), period_s=period)


def _security(pod: Doc, container: Doc) -> tuple[list[str], int | None]:
    pod_sec: Doc = pod.get("securityContext", {})
    sec: Doc = container.get("securityContext", {})
    _only(pod_sec, POD_SECURITY_KEYS, "pod securityContext")
    _only(sec, CONTAINER_SECURITY_KEYS, f"{container['name']} securityContext")
    seccomp = pod_sec.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp != "RuntimeDefault":
        raise Unsupported(f"seccompProfile {seccomp}: only RuntimeDefault (podman's) is supported.")
    user = sec.get("runAsUser", pod_sec.get("runAsUser"))
    group = sec.get("runAsGroup", pod_sec.get("runAsGroup"))
    non_root = sec.get("runAsNonRoot", pod_sec.get("runAsNonRoot", False))
    if non_root and not user:
        raise Unsupported("runAsNonRoot without a numeric runAsUser cannot be checked here.")
    options: list[str] = []
    if user is not None:
        options.append(f"--user={user}" + (f":{group}" if group is not None else ""))
    fs_group = pod_sec.get("fsGroup")
    if fs_group is not None:
        options.append(f"--group-add={fs_group}")
    if sec.get("readOnlyRootFilesystem"):
        # Podman would otherwise mount writable tmpfs on /tmp, /run and /var/tmp; Kubernetes
        # does not, so only the pod's volumes may be writable.
        options += ["--read-only", "--read-only-tmpfs=false"]
    if sec.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    capabilities: Doc = sec.get("capabilities", {})
    _only(capabilities, {"drop", "add"}, "capabilities")
    options += [f"--cap-drop={c}" for c in capabilities.get("drop", [])]
    options += [f"--cap-add={c}" for c in capabilities.get("add", [])]
    return options, fs_group


def _resources(container: Doc) -> list[str]:
    resources: Doc = container.get("resources", {})
    _only(resources, {"requests", "limits"}, "resources")
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    _only(requests, {"cpu", "memory"}, "resources.requests")
    _only(limits, {"cpu", "memory"}, "resources.limits")
    options = []
    if "memory" in limits:
        memory = int(quantity(limits["memory"]))
        # No swap for the container, as on a Kubernetes node.
        options += [f"--memory={memory}", f"--memory-swap={memory}"]
    if "memory" in requests:
        options.append(f"--memory-reservation={int(quantity(requests['memory']))}")
    if "cpu" in requests:
        # The kubelet's conversion of a CPU request to cgroup shares.
        options.append(f"--cpu-shares={max(2, int(quantity(requests['cpu']) * 1024))}")
    if "cpu" in limits:
        options.append(f"--cpus={quantity(limits['cpu'])}")
    return options


def _volumes(
    pod: Doc, container: Doc, sources: Sources, host_dir: Path, run: ContainerRun
) -> list[str]:
    declared = {v["name"]: v for v in pod.get("volumes", [])}
    options = []
    for mount in container.get("volumeMounts", []):
        _only(mount, {"name", "mountPath", "readOnly"}, f"volumeMount {mount.get('name')}")
        volume = declared.get(mount["name"])
        if volume is None:
            raise Unsupported(f"volumeMount {mount['name']}: no such volume.")
        source = host_dir / mount["name"]
        read_only = bool(mount.get("readOnly"))
        if "secret" in volume or "configMap" in volume:
            _write_keys(volume, sources, source, run)
            read_only = True  # the kubelet mounts Secrets and ConfigMaps read-only
        elif "emptyDir" in volume:
            empty = volume["emptyDir"] or {}
            _only(empty, {"medium", "sizeLimit"}, f"emptyDir {mount['name']}")
            if empty.get("medium") == "Memory":
                size = int(quantity(empty.get("sizeLimit", "64Mi")))
                options.append(
                    f"--mount=type=tmpfs,destination={mount['mountPath']},"
                    f"tmpfs-size={size},tmpfs-mode=1777"
                )
                continue
            run.directories.append((source, 0o777))  # emptyDir is world-writable
        else:
            raise Unsupported(f"volume {mount['name']}: only secret, configMap and emptyDir.")
        options.append(f"--volume={source}:{mount['mountPath']}:{'ro' if read_only else 'rw'}")
    return options


def _write_keys(volume: Doc, sources: Sources, target: Path, run: ContainerRun) -> None:
    if "secret" in volume:
        spec = volume["secret"]
        _only(spec, {"secretName", "defaultMode", "optional"}, f"secret volume {volume['name']}")
        data: Mapping[str, bytes] | None = sources.secrets.get(spec["secretName"])
        name = spec["secretName"]
    else:
        spec = volume["configMap"]
        _only(spec, {"name", "defaultMode", "optional"}, f"configMap volume {volume['name']}")
        values = sources.config_maps.get(spec["name"])
        data = None if values is None else {k: v.encode() for k, v in values.items()}
        name = spec["name"]
    if data is None:
        if spec.get("optional"):
            run.directories.append((target, 0o755))
            return
        raise Unsupported(f"volume {volume['name']}: {name} does not exist.")
    run.directories.append((target, 0o755))
    mode = int(spec.get("defaultMode", DEFAULT_MODE))
    for key, value in data.items():
        run.files.append((target / key, value, mode))


def plan(
    deployment: Doc, sources: Sources, host_dir: Path, suffix: str = CHECK_SUFFIX
) -> ContainerRun:
    """The ``podman run`` for the Deployment's (single) container, named
    ``<deployment><suffix>``; the host side of its volumes goes under ``host_dir``."""
    name = deployment["metadata"]["name"]
    pod = pod_spec(deployment)
    _only(pod, POD_KEYS, f"{name} pod spec")
    (container,) = pod["containers"]
    _only(container, CONTAINER_KEYS, f"{name} container")
    security, fs_group = _security(pod, container)
    run = ContainerRun(
        deployment=name,
        name=name + suffix,
        image=container["image"],
        options=[],
        argv=list(container.get("args", [])),
        env=container_env(container, sources),
        grace_s=int(pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)),
        readiness=_probe(container),
        ports={
            p.get("name", str(p["containerPort"])): int(p["containerPort"])
            for p in container.get("ports", [])
        },
        fs_group=fs_group,
    )
    run.options = [
        f"--name={run.name}",
        f"--hostname={run.name}",
        *security,
        *_resources(container),
        *_volumes(pod, container, sources, host_dir, run),
        *[f"--env={key}" for key in sorted(run.env)],
    ]
    if "command" in container:
        run.options.append(f"--entrypoint={json.dumps(container['command'])}")
    if "workingDir" in container:
        run.options.append(f"--workdir={container['workingDir']}")
    return run


def write_volumes(run: ContainerRun) -> None:
    """Create the host side of the run's volumes (Secret files group-owned by fsGroup)."""
    for directory, mode in run.directories:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(mode)
    for path, data, mode in run.files:
        path.write_bytes(data)
        path.chmod(mode)
        if run.fs_group is not None:
            os.chown(path, -1, run.fs_group)
