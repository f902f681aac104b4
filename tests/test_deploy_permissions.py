"""The NATS deployment carries the generated permissions, and its pieces fit together.

The Helm values include ``permissions.conf`` from a mounted ConfigMap that
``deploy/k8s/nats`` (kustomize) generates from the checked-in file, and give nats-server
every password variable the file refers to. The checked-in file itself is compared with
the code in libs/ops/tests/test_permissions.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from switchboard.devstack.natsserver import find_binary
from switchboard.ops import natsconf, permissions
from switchboard.testing.tools import require
from tests.test_deploy import WHY, render
from tools.deploycheck import manifests

NATS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "nats"
CHART_CONFIG_DIR = "/etc/nats-config"
"""Where the official chart mounts its nats.conf; ``$include`` paths are relative to it."""


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = msgspec.yaml.decode((NATS_DIR / "values.yaml").read_bytes())
    return loaded


def mounted_permissions() -> tuple[str, str]:
    """(volume name, mount path) of the permissions volume in the NATS container."""
    (patch,) = values()["container"]["patch"]
    assert patch["op"] == "add"
    assert patch["path"] == "/volumeMounts/-"
    return patch["value"]["name"], patch["value"]["mountPath"]


def test_nats_gets_every_password_the_permissions_refer_to_from_one_secret() -> None:
    env = values()["container"]["env"]
    users = permissions.table()
    assert set(env) == {natsconf.password_variable(u.user) for u in users}
    secrets = {v["valueFrom"]["secretKeyRef"]["name"] for v in env.values()}
    assert secrets == {"switchboard-nats-users"}
    for user in users:
        ref = env[natsconf.password_variable(user.user)]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == user.user


def test_the_chart_includes_the_mounted_configmap_the_kustomization_generates() -> None:
    volume, mount = mounted_permissions()
    include = values()["config"]["merge"]["$include"]
    assert os.path.normpath(os.path.join(CHART_CONFIG_DIR, include)) == (
        f"{mount}/permissions.conf"
    )
    (pod_patch,) = values()["podTemplate"]["patch"]
    assert pod_patch["path"] == "/spec/volumes/-"
    assert pod_patch["value"]["name"] == volume
    (config_map,) = manifests.render(NATS_DIR, require("kubectl", WHY))
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["namespace"] == "nats"
    assert config_map["metadata"]["name"] == pod_patch["value"]["configMap"]["name"]
    assert config_map["data"]["permissions.conf"] == (NATS_DIR / "permissions.conf").read_text()


def test_the_included_permissions_load_in_a_config_laid_out_like_the_charts(
    tmp_path: Path,
) -> None:
    _, mount = mounted_permissions()
    config_dir = tmp_path / CHART_CONFIG_DIR.lstrip("/")
    mounted = tmp_path / mount.lstrip("/")
    config_dir.mkdir(parents=True)
    mounted.mkdir(parents=True)
    (mounted / "permissions.conf").write_text((NATS_DIR / "permissions.conf").read_text())
    # What the chart renders from config.merge: the jetstream block, then `include …;`.
    include = values()["config"]["merge"]["$include"]
    main = config_dir / "nats.conf"
    main.write_text(f"jetstream {{\n  sync_interval: always\n}}\ninclude {include};\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_NATS_PASSWORD_")}
    env.update({name: "s3cret" for name in values()["container"]["env"]})
    done = subprocess.run(
        [find_binary(), "-t", "-c", str(main)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_keda_reads_consumer_lag_in_the_account_the_users_live_in(overlay: str) -> None:
    scaled = [d for d in render(overlay) if d["kind"] == "ScaledObject"]
    triggers = [t for s in scaled for t in s["spec"]["triggers"] if t["type"] == "nats-jetstream"]
    assert triggers
    assert {t["metadata"]["account"] for t in triggers} == {permissions.ACCOUNT}
