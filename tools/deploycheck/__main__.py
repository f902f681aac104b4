"""``python -m tools.deploycheck [--overlay DIR] [--scenario FILE] [--keep]``.

Needs root (rootful podman; the PostgreSQL stand-in runs as the ``postgres`` user),
kubectl, podman with runc, PostgreSQL binaries, and the images from ``make images``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tools import images
from tools.deploycheck.check import SIMULATION_IMAGE, Check, CheckFailed
from tools.deploycheck.containers import ContainerError
from tools.deploycheck.infra import InfraError
from tools.deploycheck.podspec import Unsupported

ROOT = Path(__file__).resolve().parents[2]


def _preflight() -> list[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root: the check uses rootful podman and a postgres user")
    for tool, why in (("kubectl", "renders the overlay"), ("podman", "runs the containers")):
        if shutil.which(tool) is None:
            problems.append(
                f"{tool} is not on PATH ({why}); `make container-tools` installs podman"
            )
    if not problems:
        missing = [
            f"{app.image}:{images.TAG}"
            for app in images.APPS
            if not images.image_exists(f"{app.image}:{images.TAG}")
        ]
        if missing:
            problems.append(f"images missing: {', '.join(missing)}; run `make images`")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploycheck", description=__doc__)
    parser.add_argument("--overlay", type=Path, default=ROOT / "deploy/k8s/overlays/production")
    parser.add_argument(
        "--scenario", type=Path, default=ROOT / "scenarios/a_consent_billing_manager_transfer.toml"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    os.environ.setdefault("CONTAINERS_CONF", str(images.CONTAINERS_CONF))
    # nats-py's TLS connections make asyncio warn on close; the check's output stays clean.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    problems = _preflight()
    if problems:
        for problem in problems:
            print(f"deploy-check: {problem}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sb-deploy-check-"))
    began = time.monotonic()
    check = Check(
        args.overlay.resolve(),
        args.scenario.resolve(),
        workdir,
        shutil.which("kubectl") or "kubectl",
    )
    try:
        asyncio.run(check.run())
    except (CheckFailed, ContainerError, InfraError, Unsupported) as exc:
        print(
            f"\ndeploy-check FAILED after {time.monotonic() - began:.0f} s: {exc}", file=sys.stderr
        )
        return 1
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    took = time.monotonic() - began
    print(f"\ndeploy-check passed in {took:.0f} s ({SIMULATION_IMAGE} played the call).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
