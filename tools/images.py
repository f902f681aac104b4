"""``make images``: build every container image from this checkout with podman.

No registry is needed: the base images (Debian's Python 3.11, with and without pip) are
made from Debian packages with mmdebstrap and ``podman import`` when they are not in
local storage yet, then each app image is built from ``deploy/docker/Dockerfile`` with
``--pull=never``. Prints each image's size and build time.

``--base-image``/``--build-image`` use other bases instead (e.g. ``python:3.11-slim``
from a registry); then nothing is made with mmdebstrap.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_SUITE = "bookworm"  # Python 3.11, as the lock file and the services expect
TAG = "latest"


@dataclass(frozen=True, slots=True)
class App:
    image: str
    """The name the manifests use."""
    package: str
    """The workspace package the image installs."""


APPS: tuple[App, ...] = (
    App("switchboard/consent-ledger", "switchboard-consent"),
    App("switchboard/escalation-router", "switchboard-escalation"),
    App("switchboard/sip-bridge", "switchboard-sip-bridge"),
    App("switchboard/voice-worker", "switchboard-voice"),
    # The add-ons applied on top of an overlay (deploy/k8s/webhook-relay, deploy/k8s/demo-crm).
    App("switchboard/webhook-relay", "switchboard-webhook-relay"),
    App("switchboard/demo-crm", "switchboard-demo-crm"),
    # Not deployed: the deployment check plays its scripted call with this image, as the
    # voice worker's pod (the worker's own image carries no test harness).
    App("switchboard/simulation", "switchboard-simulation"),
)


@dataclass(frozen=True, slots=True)
class Base:
    image: str
    packages: tuple[str, ...]
    pip: bool
    """Whether ``pip install`` must work (the build stage installs uv with it)."""


# Man pages, documentation and translations are left out: nothing in a container reads them.
_SLIM = (
    *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("man", "doc", "info", "locale")),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
)
RUNTIME_BASE = Base("localhost/switchboard-python:3.11", ("python3", "ca-certificates"), pip=False)
BUILD_BASE = Base(
    "localhost/switchboard-python-build:3.11",
    ("python3", "ca-certificates", "python3-pip"),
    pip=True,
)


def podman_env() -> dict[str, str]:
    """The environment for podman: the project's containers.conf unless one is set."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def _run(argv: Sequence[str], **kwargs: object) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, env=podman_env(), **kwargs)  # type: ignore[call-overload]


def image_exists(image: str) -> bool:
    return (
        subprocess.run(
            ["podman", "image", "exists", image], env=podman_env(), check=False
        ).returncode
        == 0
    )


def image_size(image: str) -> int:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", image],
        env=podman_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.strip())


def make_base(base: Base) -> float:
    """Build ``base`` with mmdebstrap and import it; returns the seconds it took."""
    started = time.monotonic()
    hooks = ["--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"]
    if base.pip:
        # Debian marks its Python as externally managed; the build stage's pip must work.
        hooks.append('--customize-hook=rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED')
    with tempfile.TemporaryDirectory(prefix="sb-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=" + ",".join(base.packages),
                *_SLIM,
                *hooks,
                DEBIAN_SUITE,
                str(tarball),
            ],
            stdout=subprocess.DEVNULL,
        )
        _run(["podman", "import", str(tarball), base.image], stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def build(app: App, base_image: str, build_image: str) -> float:
    """Build one app image; returns the seconds it took."""
    started = time.monotonic()
    argv = [
        "podman",
        "build",
        "--pull=never",
        "--file",
        str(DOCKERFILE),
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"BUILD_IMAGE={build_image}",
        "--build-arg",
        f"PACKAGE={app.package}",
        "--tag",
        f"{app.image}:{TAG}",
    ]
    if HOST_CA_BUNDLE.is_file():
        # Downloads during the build trust what this host trusts (e.g. a TLS-inspecting
        # proxy's CA), without baking the host's bundle into an image.
        argv += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    _run([*argv, str(ROOT)])
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.images", description=__doc__)
    parser.add_argument("--base-image", help="run-time base (default: made with mmdebstrap)")
    parser.add_argument("--build-image", help="build-stage base (default: made with mmdebstrap)")
    parser.add_argument("--only", action="append", help="build only this image (repeatable)")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    bases = []
    if args.base_image is None:
        bases.append(RUNTIME_BASE)
    if args.build_image is None:
        bases.append(BUILD_BASE)
    for base in bases:
        if not image_exists(base.image):
            timings[base.image] = make_base(base)
    base_image = args.base_image or RUNTIME_BASE.image
    build_image = args.build_image or BUILD_BASE.image
    apps = [a for a in APPS if not args.only or a.image in args.only]
    for app in apps:
        timings[app.image] = build(app, base_image, build_image)
    base_size = image_size(base_image)
    print(f"\n{'image':40} {'size':>9} {'own layers':>11} {'built in':>9}")
    for image in [base_image, build_image, *(f"{a.image}:{TAG}" for a in apps)]:
        size = image_size(image)
        own = size - base_size if image not in (base_image, build_image) else size
        seconds = timings.get(image.removesuffix(f":{TAG}"), timings.get(image))
        took = f"{seconds:8.0f}s" if seconds is not None else "   cached"
        print(f"{image:40} {size / 1e6:7.0f}MB {own / 1e6:9.0f}MB {took}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
