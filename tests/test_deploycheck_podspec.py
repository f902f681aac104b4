"""The deployment check runs each container as its pod spec says: the translation of a
rendered Deployment to ``podman run`` options."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.test_deploy import render
from tools.deploycheck import examples, manifests
from tools.deploycheck.podspec import ContainerRun, Sources, Unsupported, plan, quantity


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return render("production")


@pytest.fixture(scope="module")
def sources(docs: list[dict[str, Any]]) -> Sources:
    config_maps = {n: d["data"] for n, d in manifests.by_name(docs, "ConfigMap").items()}
    return Sources(config_maps, examples.materialise(examples.load(), examples.Generated()))


def run_of(docs: list[dict[str, Any]], sources: Sources, name: str, tmp: Path) -> ContainerRun:
    return plan(manifests.by_name(docs, "Deployment")[name], sources, tmp)


def test_the_ledger_runs_locked_down_with_its_keys(
    docs: list[dict[str, Any]], sources: Sources, tmp_path: Path
) -> None:
    run = run_of(docs, sources, "consent-ledger", tmp_path)
    for option in (
        "--read-only",
        "--read-only-tmpfs=false",
        "--user=10001:10001",
        "--group-add=10001",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--memory={512 * 2**20}",
        f"--memory-reservation={128 * 2**20}",
    ):
        assert option in run.options
    assert run.grace_s == 60
    assert run.argv == ["python", "-m", "switchboard.consent"]
    keys = {path.name: mode for path, _, mode in run.files if path.parent.name == "ledger-keys"}
    assert keys == {"ledger-secret.key": 0o440, "checkpoint-ed25519.pem": 0o440}
    assert f"--volume={tmp_path / 'ledger-keys'}:/var/run/switchboard/ledger-keys:ro" in run.options
    assert run.env["SB_LEDGER_GENERATE_KEYS"] == "false"
    assert run.env["SB_LEDGER_DB"].startswith("postgresql://consent:")
    assert not any(run.env["SB_NATS_PASSWORD"] in option for option in run.options)
    assert "--env=SB_NATS_PASSWORD" in run.options


def test_the_voice_worker_gets_a_writable_tmp_and_its_probe(
    docs: list[dict[str, Any]], sources: Sources, tmp_path: Path
) -> None:
    run = run_of(docs, sources, "voice-worker", tmp_path)
    assert (tmp_path / "tmp", 0o777) in run.directories
    assert f"--volume={tmp_path / 'tmp'}:/tmp:rw" in run.options
    assert run.readiness is not None
    assert run.readiness.port == 8081
    assert run.grace_s > 3600


def test_anything_the_check_cannot_honour_is_an_error(
    docs: list[dict[str, Any]], sources: Sources, tmp_path: Path
) -> None:
    deployment = copy.deepcopy(manifests.by_name(docs, "Deployment")["sip-bridge"])
    manifests.pod_spec(deployment)["hostNetwork"] = True
    with pytest.raises(Unsupported, match="hostNetwork"):
        plan(deployment, sources, tmp_path)
    missing = Sources(sources.config_maps, {})
    with pytest.raises(Unsupported, match="sip-bridge-secrets"):
        run_of(docs, missing, "sip-bridge", tmp_path)


def test_quantities() -> None:
    assert quantity("512Mi") == 512 * 2**20
    assert quantity("1G") == 10**9
    assert quantity("100m") == pytest.approx(0.1)
    assert quantity("2") == 2
