"""A real nats-server and every backend service as a subprocess, for cross-service tests.

``start_stack(workdir, permissions=True)`` runs the server with the users and permissions
generated from ``contracts.permissions`` (random passwords): each service connects as its
own user, and test clients pick theirs with ``connect_options(user)``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchboard.contracts import permissions
from switchboard.runtime.launcher import ServiceProcess
from switchboard.runtime.natsserver import NatsServer

BACKENDS = (
    ("switchboard.consent", "consent"),
    ("switchboard.escalation", "escalation"),
    ("switchboard.sip_bridge", "sip-bridge"),
)
PERMISSIONS_FILE = "nats-permissions.conf"


@dataclass
class Stack:
    """A running NATS server and the three backend services."""

    nats: NatsServer
    services: dict[str, ServiceProcess]
    workdir: Path
    passwords: dict[str, str] | None = None
    """Each NATS user's password when the server enforces permissions, else ``None``."""

    def credentials_env(self, user: str) -> dict[str, str]:
        """``SB_NATS_USER``/``SB_NATS_PASSWORD`` for a process running as ``user``."""
        if self.passwords is None:
            return {}
        return {"SB_NATS_USER": user, "SB_NATS_PASSWORD": self.passwords[user]}

    def connect_options(self, user: str) -> dict[str, Any]:
        """``nats.connect`` options for a test client acting as ``user`` (none without
        permissions, so existing tests keep connecting anonymously)."""
        if self.passwords is None:
            return {}
        return {
            "user": user,
            "password": self.passwords[user],
            "inbox_prefix": permissions.inbox_prefix(user),
        }

    def env_for_subprocess(self, user: str = permissions.Role.VOICE.value) -> dict[str, str]:
        """Environment for another process joining this stack (the voice worker's user)."""
        return {**os.environ, "SB_NATS_URL": self.nats.url, **self.credentials_env(user)}

    def logs(self, tail: int | None = 3000) -> str:
        """Every process's log (the last ``tail`` characters of each; all with None)."""
        out = []
        for path in sorted((self.workdir / "logs").glob("*.log")):
            text = path.read_text(errors="replace")
            out.append(f"--- {path.stem} ---\n{text if tail is None else text[-tail:]}")
        return "\n".join(out)


def write_permissions(workdir: Path) -> tuple[Path, dict[str, str]]:
    """The generated users and permissions with fresh random passwords."""
    users = permissions.table()
    passwords = permissions.generate_passwords(users)
    path = workdir / PERMISSIONS_FILE
    path.write_text(permissions.render(users, passwords))
    return path, passwords


def start_stack(
    workdir: Path, *, permissions_on: bool = False, extra_env: dict[str, str] | None = None
) -> Stack:
    """Start NATS and the backends; with ``permissions_on`` every process has its own user.
    ``extra_env`` goes to every backend (settings they all read, ``OTEL_*``)."""
    config, passwords = write_permissions(workdir) if permissions_on else (None, None)
    nats = NatsServer(store_dir=workdir / "nats", config_file=config).start()
    stack = Stack(nats=nats, services={}, workdir=workdir, passwords=passwords)
    env = {"SB_NATS_URL": nats.url, "SB_LOG_LEVEL": "INFO", **(extra_env or {})}
    # Each service gets only the settings it reads: unknown SB_* variables stop a service.
    own_env = {
        "consent": {
            "SB_LEDGER_DB": str(workdir / "ledger.db"),
            "SB_LEDGER_SECRET_FILE": str(workdir / "ledger-secret.key"),
            "SB_CHECKPOINT_KEY_FILE": str(workdir / "checkpoint-ed25519.pem"),
        }
    }
    stack.services = {
        name: ServiceProcess(
            module,
            name,
            env={**env, **own_env.get(name, {}), **stack.credentials_env(name)},
            log_path=workdir / "logs" / f"{name}.log",
        )
        for module, name in BACKENDS
    }
    try:
        for proc in stack.services.values():
            proc.start()

        async def ready() -> None:
            probe = stack.connect_options(permissions.Role.OPS.value)
            await asyncio.gather(*(p.ready(nats.url, **probe) for p in stack.services.values()))

        asyncio.run(ready())
    except Exception:
        for proc in stack.services.values():
            proc.kill()
        nats.stop()
        raise
    return stack
