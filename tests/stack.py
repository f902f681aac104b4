"""A real nats-server and every backend service as a subprocess, for cross-service tests."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from switchboard.runtime.launcher import ServiceProcess
from switchboard.runtime.natsserver import NatsServer

BACKENDS = (
    ("switchboard.consent", "consent"),
    ("switchboard.escalation", "escalation"),
    ("switchboard.sip_bridge", "sip-bridge"),
)


@dataclass
class Stack:
    """A running NATS server and the three backend services."""

    nats: NatsServer
    services: dict[str, ServiceProcess]
    workdir: Path

    def env_for_subprocess(self) -> dict[str, str]:
        """Environment for another process joining this stack."""
        return {**os.environ, "SB_NATS_URL": self.nats.url}

    def logs(self, tail: int | None = 3000) -> str:
        """Every process's log (the last ``tail`` characters of each; all with None)."""
        out = []
        for path in sorted((self.workdir / "logs").glob("*.log")):
            text = path.read_text(errors="replace")
            out.append(f"--- {path.stem} ---\n{text if tail is None else text[-tail:]}")
        return "\n".join(out)


def start_stack(workdir: Path) -> Stack:
    nats = NatsServer(store_dir=workdir / "nats").start()
    env = {
        "SB_NATS_URL": nats.url,
        "SB_LEDGER_DB": str(workdir / "ledger.db"),
        "SB_LEDGER_SECRET_FILE": str(workdir / "ledger-secret.key"),
        "SB_CHECKPOINT_KEY_FILE": str(workdir / "checkpoint-ed25519.pem"),
        "SB_LOG_LEVEL": "INFO",
    }
    services = {
        name: ServiceProcess(module, name, env=env, log_path=workdir / "logs" / f"{name}.log")
        for module, name in BACKENDS
    }
    try:
        for proc in services.values():
            proc.start()

        async def ready() -> None:
            await asyncio.gather(*(p.ready(nats.url) for p in services.values()))

        asyncio.run(ready())
    except Exception:
        for proc in services.values():
            proc.kill()
        nats.stop()
        raise
    return Stack(nats=nats, services=services, workdir=workdir)
