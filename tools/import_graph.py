"""Which workspace package imports which: the layering of the repository, and its rules.

    python -m tools.import_graph            # edges, one per line, with import counts
    python -m tools.import_graph --dot      # Graphviz
    python -m tools.import_graph --check    # exit 1 naming every import that breaks a rule
    python -m tools.import_graph --modules  # module-level imports that cross packages

Reads the source with ``ast`` (nothing is imported or run). A package is a folder with a
``pyproject.toml`` and a ``src/`` tree; an import belongs to the package whose source
defines the imported module. Imports inside functions count too: a lazy import is still
a dependency.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RULES: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        "switchboard-contracts",
        frozenset({"msgspec"}),
        "CRMs install contracts: it depends on msgspec alone",
    ),
    (
        "switchboard-runtime",
        # cryptography: AES-GCM for events' sealed personal fields (runtime/sealing.py).
        frozenset({"switchboard-contracts", "msgspec", "nats", "opentelemetry", "cryptography"}),
        "the production runtime carries no ops, dev or test tooling",
    ),
    (
        "switchboard-voice",
        frozenset(
            {
                "switchboard-contracts",
                "switchboard-runtime",
                "livekit",
                "msgspec",
                "nats",
                "opentelemetry",
            }
        ),
        "the worker depends on neither the simulation, a test tool nor another service",
    ),
    (
        "switchboard-consent",
        frozenset({"switchboard-contracts", "switchboard-runtime"}),
        "a service never imports another service",
    ),
    (
        "switchboard-escalation",
        frozenset({"switchboard-contracts", "switchboard-runtime"}),
        "a service never imports another service",
    ),
    (
        "switchboard-sip-bridge",
        frozenset({"switchboard-contracts", "switchboard-runtime"}),
        "a service never imports another service",
    ),
    (
        "switchboard-demo-crm",
        frozenset({"switchboard-contracts", "switchboard-runtime"}),
        "a service never imports another service",
    ),
    (
        "switchboard-webhook-relay",
        frozenset({"switchboard-contracts", "switchboard-runtime"}),
        "a service never imports another service",
    ),
)
"""(package, what it may import, why): workspace packages by distribution name, third-party
ones by top-level module; the standard library is always allowed. Backend services may
import third-party packages freely (they are not in the picture a rule protects)."""
SERVICES = frozenset(
    {
        "switchboard-consent",
        "switchboard-escalation",
        "switchboard-sip-bridge",
        "switchboard-demo-crm",
        "switchboard-webhook-relay",
    }
)
TOOLING: dict[str, frozenset[str]] = {
    "switchboard-contracts": frozenset({"argparse", "subprocess", "secrets"}),
    "switchboard-runtime": frozenset({"argparse", "subprocess"}),
}
"""Standard-library modules that mark a command-line tool or a process launcher: the
libraries every service and CRM installs carry none."""


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    src: Path


def packages(root: Path = ROOT) -> list[Package]:
    """Every workspace package with a ``src/`` tree."""
    out = []
    found = sorted(root.glob("*/pyproject.toml")) + sorted(root.glob("*/*/pyproject.toml"))
    for pyproject in found:
        src = pyproject.parent / "src"
        if src.is_dir():
            name = tomllib.loads(pyproject.read_text())["project"]["name"]
            out.append(Package(name, src))
    return out


def _module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _owners(pkgs: list[Package]) -> dict[str, str]:
    """Module name → package name, for every module of the workspace."""
    owners = {}
    for pkg in pkgs:
        for path in pkg.src.rglob("*.py"):
            owners[_module_name(pkg.src, path)] = pkg.name
    return owners


def _imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*anchor, base] if base else anchor)
            found += [f"{base}.{alias.name}" for alias in node.names] + [base]
    return found


def _owner(name: str, owners: dict[str, str]) -> str | None:
    """The workspace package defining ``name``, else its third-party top-level module,
    else ``None`` (the standard library)."""
    top = name.partition(".")[0]
    while name:
        if name in owners:
            return owners[name]
        name = name.rpartition(".")[0]
    if not top or top in sys.stdlib_module_names or top == "switchboard":
        return None
    return top


def edges(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) pairs → the importing modules. The imported side is a
    workspace package (``switchboard-…``) or a third-party top-level module."""
    pkgs = packages(root)
    owners = _owners(pkgs)
    out: dict[tuple[str, str], list[str]] = {}
    for pkg in pkgs:
        for path in sorted(pkg.src.rglob("*.py")):
            module = _module_name(pkg.src, path)
            seen = set()
            for name in _imports(path, module):
                target = _owner(name, owners)
                if target is None or target == pkg.name or target in seen:
                    continue
                seen.add(target)
                out.setdefault((pkg.name, target), []).append(module)
    return out


def module_edges(root: Path = ROOT) -> list[tuple[str, str]]:
    """(importing module, imported module) for imports that cross a package boundary."""
    pkgs = packages(root)
    owners = _owners(pkgs)
    out = set()
    for pkg in pkgs:
        for path in sorted(pkg.src.rglob("*.py")):
            module = _module_name(pkg.src, path)
            for name in _imports(path, module):
                while name and name not in owners:
                    name = name.rpartition(".")[0]
                if name and owners[name] != pkg.name:
                    out.add((module, name))
    return sorted(out)


def tooling(root: Path = ROOT) -> list[str]:
    """Imports of command-line or process-launching modules where ``TOOLING`` forbids them."""
    found = []
    for pkg in packages(root):
        banned = TOOLING.get(pkg.name, frozenset())
        for path in sorted(pkg.src.rglob("*.py")):
            module = _module_name(pkg.src, path)
            used = {name.partition(".")[0] for name in _imports(path, module)} & banned
            if used:
                found.append(
                    f"{pkg.name} carries tooling: {module} imports {', '.join(sorted(used))}."
                )
    return found


def violations(graph: dict[tuple[str, str], list[str]]) -> list[str]:
    allowed = {name: (ok, why) for name, ok, why in RULES}
    found = []
    for (src, dst), modules in sorted(graph.items()):
        third_party = not dst.startswith("switchboard-")
        if src in SERVICES and third_party:
            continue
        if src in allowed and dst not in allowed[src][0]:
            why = allowed[src][1]
            found.append(f"{src} imports {dst} ({', '.join(sorted(set(modules)))}): {why}.")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.import_graph", description=__doc__)
    parser.add_argument("--dot", action="store_true", help="print Graphviz")
    parser.add_argument("--check", action="store_true", help="exit 1 on a broken rule")
    parser.add_argument(
        "--workspace", action="store_true", help="only imports between workspace packages"
    )
    parser.add_argument(
        "--modules", action="store_true", help="module-level imports across packages"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="another checkout to read")
    args = parser.parse_args(argv)
    if args.modules:
        for src, dst in module_edges(args.root):
            print(f"{src} -> {dst}")
        return 0
    graph = edges(args.root)
    if args.workspace:
        graph = {k: v for k, v in graph.items() if k[1].startswith("switchboard-")}
    if args.check:
        problems = violations(graph) + tooling(args.root)
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    if args.dot:
        print("digraph imports {")
        for (src, dst), modules in sorted(graph.items()):
            print(f'  "{src}" -> "{dst}" [label="{len(modules)}"];')
        print("}")
        return 0
    width = max((len(src) for src, _ in graph), default=0)
    for (src, dst), modules in sorted(graph.items()):
        counts = Counter(modules)
        print(f"{src:<{width}} -> {dst}  ({len(counts)} modules)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
