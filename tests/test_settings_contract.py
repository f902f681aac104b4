"""Configuration is a contract: every variable a manifest sets is read by the process it
goes to, and a process refuses variables it does not read.

The overlays are rendered (``kubectl kustomize``); each Deployment's environment is built
as the kubelet builds it from the rendered ConfigMaps and the checked-in example Secrets,
and compared with the settings of the service its container runs.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import livekit.agents.worker
import opentelemetry.sdk.environment_variables as otel_variables
import pytest

import switchboard.sip_bridge.settings
import switchboard.voice.providers
from switchboard.consent.settings import ConsentSettings, ledger_dsn
from switchboard.devstack.natsserver import NatsServer
from switchboard.escalation.settings import EscalationSettings
from switchboard.runtime.settings import (
    SHARED_VARIABLES,
    ServiceSettings,
    SettingsError,
    known_variables,
    load,
)
from switchboard.simulation.settings import SimulationSettings
from switchboard.sip_bridge.settings import SipBridgeSettings
from switchboard.testing.tools import require
from switchboard.voice.settings import VoiceSettings
from tests.test_deploy import ROOT, WHY
from tools.deploycheck import examples, manifests
from tools.deploycheck.podspec import Sources, container_env

SETTINGS: dict[str, type[ServiceSettings]] = {
    "switchboard.consent": ConsentSettings,
    "switchboard.escalation": EscalationSettings,
    "switchboard.sip_bridge": SipBridgeSettings,
    "switchboard.voice": VoiceSettings,
    "switchboard.runtime.provision": ServiceSettings,
}
"""The settings of the process ``python -m <module>`` runs."""

LIVEKIT = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
EXTERNAL: dict[str, dict[str, ModuleType]] = {
    "switchboard.voice": {
        **dict.fromkeys(LIVEKIT, livekit.agents.worker),
        "OPENAI_API_KEY": switchboard.voice.providers,
        "ELEVEN_API_KEY": switchboard.voice.providers,
    },
    "switchboard.sip_bridge": dict.fromkeys(LIVEKIT, switchboard.sip_bridge.settings),
}
"""Variables without ``SB_`` a service's libraries read, and the module that reads them."""


def deployment_envs(overlay: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Deployment or Job → (module it runs, its environment with generated example values)."""
    docs = manifests.render(ROOT / "deploy/k8s/overlays" / overlay, require("kubectl", WHY))
    config_maps = {
        name: d.get("data", {}) for name, d in manifests.by_name(docs, "ConfigMap").items()
    }
    sources = Sources(config_maps, examples.materialise(examples.load(), examples.Generated()))
    out = {}
    for name, deployment in manifests.workloads(docs).items():
        (container,) = manifests.pod_spec(deployment)["containers"]
        out[name] = (manifests.module_of(container), container_env(container, sources))
    return out


def read_by(module: str, name: str) -> bool:
    """Whether ``name`` (not ``SB_*``) is read by code the ``module`` process runs."""
    if name.startswith("OTEL_"):
        # The OpenTelemetry SDK's own list of the variables it and its exporters read.
        return getattr(otel_variables, name, None) == name
    reader = EXTERNAL.get(module, {}).get(name)
    return reader is not None and name in inspect.getsource(reader)


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_every_manifest_variable_is_read_by_its_service(overlay: str) -> None:
    envs = deployment_envs(overlay)
    assert set(envs) == {
        "consent-ledger",
        "escalation-router",
        "sip-bridge",
        "voice-worker",
        "provision-streams",
    }
    for deployment, (module, env) in envs.items():
        settings = SETTINGS[module]
        for name in env:
            if name.startswith("SB_"):
                # Shared variables are for inherited environments, never for manifests.
                assert name in known_variables(settings), f"{deployment}: {name} is read by no one"
            else:
                assert read_by(module, name), f"{deployment}: {name} is read by no one"
        loaded = load(settings, env)  # every value also fits its type
        if isinstance(loaded, ConsentSettings):
            ledger_dsn(loaded)


def test_production_ledger_never_generates_keys_and_verifies_postgres() -> None:
    _, env = deployment_envs("production")["consent-ledger"]
    settings = load(ConsentSettings, env)
    assert not settings.ledger_generate_keys
    assert settings.ledger_db.startswith("postgresql://")
    assert "sslmode=verify-full" in ledger_dsn(settings)
    assert "sslrootcert=" in ledger_dsn(settings)


def test_the_shared_config_map_holds_only_what_every_service_reads() -> None:
    docs = manifests.render(ROOT / "deploy/k8s/overlays/production", require("kubectl", WHY))
    common = manifests.by_name(docs, "ConfigMap")["switchboard-common"]["data"]
    for name in common:
        assert name in known_variables(ServiceSettings) or read_by("", name), name


def test_shared_variables_are_read_by_someone() -> None:
    simulation = known_variables(SimulationSettings)
    testing_plugin = (ROOT / "libs/testing/src/switchboard/testing/plugin.py").read_text()
    for name in SHARED_VARIABLES:
        assert name in simulation or f'"{name}"' in testing_plugin, name


def test_an_unknown_variable_names_itself_and_the_closest_known_one() -> None:
    with pytest.raises(SettingsError) as raised:
        load(
            ConsentSettings,
            {"SB_SIGNING_KEY_FILE": "/keys/ed25519.key", "SB_TEST_POSTGRES_DSN": "postgresql://x"},
        )
    message = str(raised.value)
    assert "SB_SIGNING_KEY_FILE is not a setting" in message
    assert "closest it reads is SB_CHECKPOINT_KEY_FILE" in message
    assert "SB_TEST_POSTGRES_DSN" not in message  # shared: the test suite's, inherited


@pytest.mark.parametrize(
    ("argv", "closest"),
    [
        (["-m", "switchboard.consent"], "SB_CHECKPOINT_KEY_FILE"),
        (["-m", "switchboard.escalation"], "SB_NATS_TLS_KEY_FILE"),
        (["-m", "switchboard.sip_bridge"], None),
        (["-m", "switchboard.voice", "start"], None),
        (["-m", "switchboard.simulation", "run-scenario", "x.toml"], None),
        (["-m", "switchboard.demo_crm"], None),
        (["-m", "switchboard.webhook_relay"], None),
        (["-m", "switchboard.webhook_relay", "dead-letters"], None),
    ],
)
def test_every_entry_point_refuses_an_unknown_variable(
    argv: list[str], closest: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
    env["SB_SIGNING_KEY_FILE"] = "/keys/ed25519.key"
    done = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SB_SIGNING_KEY_FILE is not a setting" in done.stderr
    assert f"closest it reads is {closest or 'SB_'}" in done.stderr


def test_the_ledger_without_its_key_files_refuses_to_start_and_names_them(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    missing = tmp_path / "keys" / "ledger-secret.key"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
    env.update(
        {
            "SB_NATS_URL": nats_server.url,
            "SB_LEDGER_DB": str(tmp_path / "ledger.db"),
            "SB_LEDGER_GENERATE_KEYS": "false",
            "SB_LEDGER_SECRET_FILE": str(missing),
            "SB_CHECKPOINT_KEY_FILE": str(tmp_path / "keys" / "checkpoint.pem"),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.consent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(missing) in done.stderr
    assert "SB_LEDGER_SECRET_FILE" in done.stderr
    assert not missing.parent.exists()  # nothing generated, not even the directory
