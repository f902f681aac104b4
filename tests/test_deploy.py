"""The Kubernetes manifests render and keep the rules the design depends on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from switchboard.testing.tools import require
from tools.deploycheck import manifests

ROOT = Path(__file__).resolve().parents[1]
WHY = "the deploy tests render the kustomize overlays with it (kubectl kustomize)"


def render(overlay: str) -> list[dict[str, Any]]:
    return manifests.render(ROOT / "deploy/k8s/overlays" / overlay, require("kubectl", WHY))


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_every_deployment_has_resources_and_drops_privileges(overlay: str) -> None:
    docs = render(overlay)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "consent-ledger",
        "escalation-router",
        "sip-bridge",
        "voice-worker",
    }
    for d in manifests.workloads(docs).values():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["resources"]["requests"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_voice_workers_outlast_their_drain_timeout() -> None:
    voice = next(d for d in render("production") if d["metadata"]["name"] == "voice-worker")
    assert voice["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 3600


def test_production_streams_are_replicated_three_times() -> None:
    config = next(d for d in render("production") if d["kind"] == "ConfigMap")
    assert config["data"]["SB_STREAM_REPLICAS"] == "3"
    values = msgspec.yaml.decode((ROOT / "deploy/k8s/nats/values.yaml").read_bytes())
    assert values["config"]["merge"]["jetstream"]["sync_interval"] == "always"
    assert values["config"]["cluster"]["replicas"] == 3


def test_make_images_builds_every_image_the_manifests_run() -> None:
    from tools import images

    built = {app.image for app in images.APPS}
    for overlay in ("local", "production"):
        for deployment in manifests.workloads(render(overlay)).values():
            for container in manifests.pod_spec(deployment)["containers"]:
                name, _, tag = container["image"].partition(":")
                assert name in built, f"{name} is not built by make images"
                assert tag == images.TAG


def test_the_dockerfile_takes_its_base_images_as_arguments() -> None:
    dockerfile = (ROOT / "deploy/docker/Dockerfile").read_text().splitlines()
    froms = [line.split()[1] for line in dockerfile if line.startswith("FROM ")]
    assert froms == ["${BUILD_IMAGE}", "${BASE_IMAGE}"]
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".venv", ".tools", ".git", "var"} <= set(ignored)


def test_voice_workers_scale_on_the_load_livekit_dispatches_on() -> None:
    docs = render("production")
    hpa = next(
        d
        for d in docs
        if d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == "voice-worker"
    )
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert [p["metric"]["name"] for p in pods] == ["lk_agents_worker_load"]
    # Below the worker's load threshold, where it stops taking calls.
    from switchboard.voice.worker import LOAD_THRESHOLD

    assert float(pods[0]["target"]["averageValue"].removesuffix("m")) / 1000 < LOAD_THRESHOLD
    voice = next(d for d in docs if d["metadata"]["name"] == "voice-worker")
    [container] = voice["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    from switchboard.voice.settings import VoiceSettings

    assert ports["metrics"] == VoiceSettings().metrics_port
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["SB_BRAIN"] == "openai"


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_a_job_provisions_the_streams_as_the_provisioner_user(overlay: str) -> None:
    """Finding 3: services only check their streams exist; a Job with its own NATS user
    (from its own Secret) creates them, with the replicas the overlay asks for."""
    from switchboard.ops import permissions
    from switchboard.runtime import provision
    from tools.deploycheck import examples

    docs = render(overlay)
    job = manifests.by_name(docs, "Job")["provision-streams"]
    pod = manifests.pod_spec(job)
    (container,) = pod["containers"]
    assert manifests.module_of(container) == provision.__name__
    assert pod["restartPolicy"] == "OnFailure"
    secret_names = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
    (secret,) = [s for s in examples.load() if s["metadata"]["name"] in secret_names]
    assert secret["stringData"]["SB_NATS_USER"] == permissions.Role.PROVISIONER.value
    common = manifests.by_name(docs, "ConfigMap")["switchboard-common"]["data"]
    assert {"configMapRef": {"name": "switchboard-common"}} in container["envFrom"]
    assert common["SB_STREAM_REPLICAS"] == ("3" if overlay == "production" else "1")
