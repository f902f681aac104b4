"""``contracts`` is what CRMs install: it must pull in msgspec and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parents[1]
PACKAGE = CONTRACTS / "src" / "switchboard" / "contracts"

# msgspec itself imports some optional modules when present (typing_extensions), so what
# counts is what importing contracts adds on top of msgspec.
_IMPORT_ALL = """
import importlib, json, sys
from pathlib import Path
import msgspec, msgspec.json, msgspec.structs
before = set(sys.modules)
for path in sorted(Path(sys.argv[1]).glob("*.py")):
    name = path.stem
    importlib.import_module("switchboard.contracts" + ("" if name == "__init__" else "." + name))
added = set(sys.modules) - before
tops = {m.split(".")[0] for m in added} - set(sys.stdlib_module_names)
print(json.dumps(sorted(tops | {m for m in added if m.startswith("switchboard.")})))
"""


def test_the_package_declares_msgspec_as_its_only_dependency() -> None:
    project = tomllib.loads((CONTRACTS / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["msgspec"]


def test_importing_every_module_loads_nothing_but_msgspec_and_contracts() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, str(PACKAGE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    third_party = {m for m in loaded if "." not in m} - {"switchboard"}
    assert not third_party, f"contracts imports {sorted(third_party)}"
    ours = {m for m in loaded if m.startswith("switchboard.")}
    assert all(m.startswith("switchboard.contracts") for m in ours), sorted(ours)
    assert "switchboard.contracts.registry" in ours
