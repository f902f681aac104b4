"""The layering of the repository holds: who may import whom (``tools/import_graph.py``)."""

from __future__ import annotations

from pathlib import Path

from tools import import_graph


def test_no_package_imports_what_its_layer_forbids() -> None:
    assert import_graph.violations(import_graph.edges()) == []
    assert import_graph.tooling() == []


def test_a_launcher_in_the_runtime_is_reported(tmp_path: Path) -> None:
    _package(
        tmp_path,
        "runtime",
        "switchboard-runtime",
        "switchboard.runtime.launcher",
        "import subprocess\n",
    )
    [found] = import_graph.tooling(tmp_path)
    assert "switchboard.runtime.launcher imports subprocess" in found


def test_the_worker_and_the_simulation_depend_one_way() -> None:
    graph = import_graph.edges()
    assert ("switchboard-simulation", "switchboard-voice") in graph
    assert ("switchboard-voice", "switchboard-simulation") not in graph


def _package(root: Path, folder: str, name: str, module: str, source: str) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    path = root / folder / "src" / Path(*module.split("."))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".py").write_text(source)


def test_a_forbidden_import_is_reported_with_the_module_that_made_it(tmp_path: Path) -> None:
    _package(tmp_path, "contracts", "switchboard-contracts", "switchboard.contracts.x", "")
    _package(
        tmp_path,
        "voice",
        "switchboard-voice",
        "switchboard.voice.demo",
        "def f():\n    from switchboard.simulation import runner\n    import pytest\n",
    )
    _package(tmp_path, "sim", "switchboard-simulation", "switchboard.simulation.runner", "")
    [pytest, simulation] = import_graph.violations(import_graph.edges(tmp_path))
    assert simulation.startswith("switchboard-voice imports switchboard-simulation")
    assert "switchboard.voice.demo" in simulation
    assert pytest.startswith("switchboard-voice imports pytest")
