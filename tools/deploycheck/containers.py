"""podman, asynchronously: run a planned container, watch it, stop it, read its exit code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from tools.deploycheck.podspec import ContainerRun
from tools.images import podman_env


class ContainerError(RuntimeError):
    """podman failed, or a container did not behave."""


@dataclass(frozen=True, slots=True)
class Finished:
    code: int
    stdout: str
    stderr: str


async def podman(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> Finished:
    process = await asyncio.create_subprocess_exec(
        "podman",
        *argv,
        env=env or podman_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ContainerError(f"podman {argv[0]} did not finish within {timeout} s") from None
    return Finished(
        process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )


def run_argv(run: ContainerRun, extra: Sequence[str], *, detach: bool) -> list[str]:
    """``podman run`` arguments: the pod spec's options, then the check's own ``extra``."""
    return [
        "run",
        *(["--detach"] if detach else ["--rm"]),
        "--pull=never",
        *run.options,
        *extra,
        run.image,
        *run.argv,
    ]


def run_env(run: ContainerRun) -> dict[str, str]:
    """podman's environment: the container's variables, handed over with ``--env NAME``."""
    return {**podman_env(), **run.env}


async def start(run: ContainerRun, extra: Sequence[str]) -> None:
    done = await podman(*run_argv(run, extra, detach=True), env=run_env(run))
    if done.code != 0:
        raise ContainerError(f"podman run {run.name} failed: {done.stderr.strip()}")


async def run_to_end(run: ContainerRun, extra: Sequence[str], timeout: float) -> Finished:
    """Run in the foreground and return its exit code and output (the container is removed)."""
    return await podman(*run_argv(run, extra, detach=False), env=run_env(run), timeout=timeout)


async def state(name: str) -> dict[str, object]:
    done = await podman("inspect", "--format", "{{json .State}}", name)
    if done.code != 0:
        raise ContainerError(f"podman inspect {name}: {done.stderr.strip()}")
    loaded: dict[str, object] = json.loads(done.stdout)
    return loaded


async def running(name: str) -> bool:
    return bool((await state(name)).get("Running"))


async def logs(name: str, tail: int | None = 40) -> str:
    done = await podman("logs", *(["--tail", str(tail)] if tail is not None else []), name)
    return done.stdout + done.stderr


async def stop(name: str, grace_s: int) -> int:
    """SIGTERM, up to ``grace_s`` to exit (then SIGKILL, as the kubelet does); the exit code."""
    done = await podman("stop", f"--time={grace_s}", name, timeout=grace_s + 30)
    if done.code != 0:
        raise ContainerError(f"podman stop {name}: {done.stderr.strip()}")
    code = (await state(name)).get("ExitCode")
    return int(code) if isinstance(code, int) else -1


async def remove(name: str) -> None:
    await podman("rm", "--force", "--ignore", name)
