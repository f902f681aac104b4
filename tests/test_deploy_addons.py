"""The add-on kustomizations (deploy/k8s/webhook-relay, deploy/k8s/demo-crm) render, keep
the base's rules, and give their process only settings it reads, with values that load.

They go on top of an overlay: each is rendered here with the production overlay's shared
ConfigMap and the example Secrets, as the settings contract does for the overlays.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from switchboard.demo_crm.settings import DemoCrmSettings
from switchboard.ops.permissions import DEFAULT_WEBHOOK_ENDPOINTS
from switchboard.runtime.settings import ServiceSettings, known_variables, load
from switchboard.testing.tools import require
from switchboard.webhook_relay.endpoints import load_endpoints
from switchboard.webhook_relay.settings import RelaySettings
from tests.test_deploy import ROOT, WHY, render
from tools.deploycheck import examples, manifests
from tools.deploycheck.podspec import Sources, container_env

ADDONS: dict[str, tuple[str, type[ServiceSettings]]] = {
    "webhook-relay": ("switchboard.webhook_relay", RelaySettings),
    "demo-crm": ("switchboard.demo_crm", DemoCrmSettings),
}


def addon(name: str) -> list[dict[str, Any]]:
    return manifests.render(ROOT / "deploy/k8s" / name, require("kubectl", WHY))


def environment(name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The add-on's Deployment and its container's environment over production."""
    docs = addon(name)
    config_maps = {
        n: d.get("data", {})
        for n, d in {
            **manifests.by_name(render("production"), "ConfigMap"),
            **manifests.by_name(docs, "ConfigMap"),
        }.items()
    }
    sources = Sources(config_maps, examples.materialise(examples.load(), examples.Generated()))
    (deployment,) = manifests.of_kind(docs, "Deployment")
    (container,) = manifests.pod_spec(deployment)["containers"]
    return deployment, container_env(container, sources)


@pytest.mark.parametrize("name", sorted(ADDONS))
def test_an_addon_runs_locked_down_as_its_own_nats_user_with_settings_it_reads(
    name: str,
) -> None:
    deployment, env = environment(name)
    module, settings = ADDONS[name]
    pod = manifests.pod_spec(deployment)
    (container,) = pod["containers"]
    assert manifests.module_of(container) == module
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]
    assert deployment["metadata"]["namespace"] == "switchboard"
    for variable in env:
        if variable.startswith("SB_"):
            assert variable in known_variables(settings), f"{name}: {variable} is read by no one"
    load(settings, env)  # every value fits its type
    assert env["SB_NATS_USER"] == {"webhook-relay": "webhook-relay", "demo-crm": "crm"}[name]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["nats-tls"]["secret"]["secretName"] == f"{name}-nats-tls"


@pytest.mark.parametrize("name", sorted(ADDONS))
def test_make_images_builds_the_addons_images(name: str) -> None:
    from tools import images

    deployment, _ = environment(name)
    (container,) = manifests.pod_spec(deployment)["containers"]
    image, _, tag = container["image"].partition(":")
    assert image in {app.image for app in images.APPS}
    assert tag == images.TAG


def test_one_relay_at_a_time_reads_each_endpoints_consumer(tmp_path: Path) -> None:
    deployment, env = environment("webhook-relay")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two in a rollout
    (config,) = manifests.of_kind(addon("webhook-relay"), "ConfigMap")
    text = config["data"]["endpoints.toml"]
    names = re.findall(r'^name = "([^"]+)"', text, re.MULTILINE)
    assert tuple(names) == DEFAULT_WEBHOOK_ENDPOINTS  # the NATS user may read their consumers
    # The shipped file loads, with the example Secret's key in place of the mounted one.
    secrets = examples.materialise(examples.load(), examples.Generated())
    secret = tmp_path / "crm"
    secret.write_bytes(secrets["webhook-relay-endpoint-secrets"]["crm"])
    mounted = "/etc/switchboard/webhook-secrets"
    path = tmp_path / "endpoints.toml"
    path.write_text(text.replace(f"{mounted}/crm", str(secret)))
    [endpoint] = load_endpoints(str(path), 60.0)
    assert endpoint.url.startswith("https://")
    assert env["SB_WEBHOOK_ENDPOINTS_FILE"].startswith("/etc/switchboard/webhooks/")
