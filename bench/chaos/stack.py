"""The processes of a chaos run and the faults done to them.

NATS is a real nats-server whose JetStream store directory outlives its restarts; the
backends run through their entry points (``switchboard.devstack``), the ledger on a
PostgreSQL schema of its own. Its connections carry an ``application_name`` of this run,
so a connection cut terminates the ledger's backends and nobody else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from switchboard.contracts.subjects import Owner
from switchboard.devstack.launcher import BACKENDS, ServiceProcess, local_settings, provision
from switchboard.devstack.natsserver import NatsServer
from switchboard.testing.postgres import fresh_schema

READY_TIMEOUT_S = 60.0
SUPERVISE_S = 0.5
BRIDGE_CAPS = "100000"
"""Dial rate, burst and concurrency of the bridge: the run measures crashes, not the
carrier's admission limits."""

LEDGER = Owner.CONSENT.value
ROUTER = Owner.ESCALATION.value
BRIDGE = Owner.SIP_BRIDGE.value
KILLABLE = (LEDGER, ROUTER, BRIDGE)


@dataclass
class ChaosStack:
    """The running processes, and what was done to them."""

    workdir: Path
    nats: NatsServer
    services: dict[str, ServiceProcess]
    server_dsn: str
    ledger_dsn: str
    application_name: str
    kills: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    """Services that exited on their own (not killed by the run), restarted as a
    Kubernetes Deployment would restart them."""
    exit_codes: dict[str, list[int]] = field(default_factory=dict)
    nats_restarts: int = 0
    pg_cuts: int = 0
    pg_backends_terminated: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by whoever is stopping or starting processes (a fault, the supervisor)."""

    @property
    def url(self) -> str:
        return self.nats.url

    def ledger_env(self) -> dict[str, str]:
        """The settings the ledger runs with (also what ``verify`` needs to find its keys)."""
        return {
            "SB_LEDGER_DB": self.ledger_dsn,
            "SB_LEDGER_SECRET_FILE": str(self.workdir / "ledger-secret.key"),
            "SB_CHECKPOINT_KEY_FILE": str(self.workdir / "checkpoint-ed25519.pem"),
            "SB_LEDGER_GENERATE_KEYS": "true",
        }

    async def start(self) -> None:
        for proc in self.services.values():
            proc.start()
        await asyncio.gather(*(p.ready(self.url, READY_TIMEOUT_S) for p in self.services.values()))

    async def kill(self, name: str, down_s: float) -> None:
        """``SIGKILL`` one service, leave it down ``down_s``, start it and wait until it answers."""
        proc = self.services[name]
        await self.restart_exited()
        await asyncio.to_thread(proc.kill)
        self.kills[name] += 1
        await asyncio.sleep(down_s)
        proc.start()
        await proc.ready(self.url, READY_TIMEOUT_S)

    async def restart_exited(self) -> None:
        """Start again every service that exited by itself since the last look."""
        for name, proc in self.services.items():
            code = proc.process.poll() if proc.process is not None else None
            if code is not None:
                self.exits[name] += 1
                self.exit_codes.setdefault(name, []).append(code)
                proc.start()
                await proc.ready(self.url, READY_TIMEOUT_S)

    async def supervise(self, stop: asyncio.Event, every_s: float = SUPERVISE_S) -> None:
        """Restart services that exit on their own, until ``stop``; faults restart theirs."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
            async with self.lock:
                await self.restart_exited()

    async def restart_nats(self, down_s: float) -> None:
        """Stop the nats-server and start it again on the same port and store."""
        await asyncio.to_thread(self.nats.stop)
        self.nats_restarts += 1
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.nats.start)
        # Every service must be back on the bus before the next fault.
        await asyncio.gather(*(p.ready(self.url, READY_TIMEOUT_S) for p in self.services.values()))

    async def cut_postgres(self) -> None:
        """Terminate the ledger's PostgreSQL backends, as a failover or a proxy restart does."""
        terminated = await asyncio.to_thread(self._terminate_ledger_backends)
        self.pg_cuts += 1
        self.pg_backends_terminated += terminated

    def _terminate_ledger_backends(self) -> int:
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                "FROM pg_stat_activity WHERE application_name = %s",
                (self.application_name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> dict[str, int | None]:
        codes = {name: proc.stop() for name, proc in reversed(self.services.items())}
        self.nats.stop()
        return codes


@contextlib.contextmanager
def chaos_stack(workdir: Path, server_dsn: str, log_level: str) -> Iterator[ChaosStack]:
    """NATS, a fresh ledger schema and the backends (not started yet); torn down on exit."""
    name = f"sb-chaos-ledger-{uuid.uuid4().hex[:8]}"
    with fresh_schema(server_dsn, prefix="chaos") as schema_dsn:
        nats = NatsServer(store_dir=workdir / "nats").start()
        provision(nats.url)  # the streams, as production's step makes them; the store keeps them
        stack = ChaosStack(
            workdir=workdir,
            nats=nats,
            services={},
            server_dsn=server_dsn,
            ledger_dsn=f"{schema_dsn}&application_name={name}",
            application_name=name,
        )
        common = {"SB_NATS_URL": nats.url, "SB_LOG_LEVEL": log_level}
        # Each service gets only the settings it reads: unknown SB_* variables stop a service.
        own = {
            LEDGER: stack.ledger_env(),
            BRIDGE: {
                "SB_TRANSFER_CPS": BRIDGE_CAPS,
                "SB_TRANSFER_BURST": BRIDGE_CAPS,
                "SB_TRANSFER_MAX_CONCURRENT": BRIDGE_CAPS,
                "SB_TRANSFER_MAX_QUEUED": BRIDGE_CAPS,
            },
        }
        stack.services = {
            service: ServiceProcess(
                module,
                service,
                env={**common, **local_settings(service), **own.get(service, {})},
                log_path=workdir / "logs" / f"{service}.log",
            )
            for module, service in BACKENDS
        }
        try:
            yield stack
        finally:
            stack.stop()
