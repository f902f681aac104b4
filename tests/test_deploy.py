"""The Kubernetes manifests render and keep the rules the design depends on."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = shutil.which("kubectl")


def render(overlay: str) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.fail("kubectl is needed to render the kustomize overlays.")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [msgspec.yaml.decode(doc) for doc in out.split("\n---\n") if doc.strip()]


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_every_deployment_has_resources_and_drops_privileges(overlay: str) -> None:
    docs = render(overlay)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "consent-ledger",
        "escalation-router",
        "sip-bridge",
        "voice-worker",
        "webhook-relay",
        *(["demo-crm"] if overlay == "local" else []),
    }
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["resources"]["requests"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_one_webhook_relay_at_a_time_reads_each_endpoints_consumer(overlay: str) -> None:
    relay = next(d for d in render(overlay) if d["metadata"]["name"] == "webhook-relay")
    assert relay["spec"]["replicas"] == 1
    assert relay["spec"]["strategy"]["type"] == "Recreate"  # never two during a rollout
    config = next(
        d for d in render(overlay) if d["metadata"]["name"].startswith("webhook-relay-endpoints")
    )
    from switchboard.ops.permissions import DEFAULT_WEBHOOK_ENDPOINTS

    names = re.findall(r'^name = "([^"]+)"', config["data"]["endpoints.toml"], re.MULTILINE)
    assert tuple(names) == DEFAULT_WEBHOOK_ENDPOINTS  # the NATS user may read their consumers


def test_voice_workers_outlast_their_drain_timeout() -> None:
    voice = next(d for d in render("production") if d["metadata"]["name"] == "voice-worker")
    assert voice["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 3600


def test_production_streams_are_replicated_three_times() -> None:
    config = next(d for d in render("production") if d["kind"] == "ConfigMap")
    assert config["data"]["SB_STREAM_REPLICAS"] == "3"
    values = msgspec.yaml.decode((ROOT / "deploy/k8s/nats/values.yaml").read_bytes())
    assert values["config"]["merge"]["jetstream"]["sync_interval"] == "always"
    assert values["config"]["cluster"]["replicas"] == 3
