"""Start service processes through their entry points and wait until they answer.

Used by ``make demo``, the benchmarks and the end-to-end tests, which run every backend
service as a real subprocess (``python -m switchboard.<name>``) against a real nats-server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import nats

from switchboard.contracts.subjects import Owner


class Backend(NamedTuple):
    """A backend service: the module ``python -m`` runs and the service name it registers."""

    module: str
    service: str


BACKENDS: tuple[Backend, ...] = (
    Backend("switchboard.consent", Owner.CONSENT.value),
    Backend("switchboard.escalation", Owner.ESCALATION.value),
    Backend("switchboard.sip_bridge", Owner.SIP_BRIDGE.value),
    Backend("switchboard.demo_crm", Owner.CRM.value),
)
"""The backend services, in the order they are started (the demo CRM stands in for the
customer's back office, so the voice agents' ``sb.crm.*`` requests are answered)."""

LOCAL_TRANSFER_ALLOW = "+1555010*,sip:*@pbx.example.com"
"""The sip-bridge's allow-list on one machine: the desks of the escalation router's
default rules (fictional +1 555 01xx numbers and the reserved ``example.com`` domain). The
bridge screens with its configured list whatever the carrier driver, so local runs name
theirs too."""


def local_settings(service: str) -> dict[str, str]:
    """The ``SB_*`` settings a backend needs on one machine beyond the shared ones."""
    if service == Owner.SIP_BRIDGE.value:
        return {"SB_TRANSFER_ALLOW": LOCAL_TRANSFER_ALLOW}
    return {}


class LaunchError(RuntimeError):
    """A service exited or did not become ready in time."""


PROVISION_MODULE = "switchboard.runtime.provision"
"""The provisioning step: creates the streams before any service starts (services only
check that they exist)."""


def provision(nats_url: str, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> None:
    """Run the provisioning step against ``nats_url`` as production does (a process of its
    own; ``env`` adds its NATS user when the server enforces permissions)."""
    done = subprocess.run(
        [sys.executable, "-m", PROVISION_MODULE],
        env={**inherited_environment(), "SB_NATS_URL": nats_url, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise LaunchError(
            f"Provisioning the streams failed with {done.returncode}: {done.stderr[-2000:]}"
        )


def inherited_environment() -> dict[str, str]:
    """This process's environment without its ``SB_*`` settings: those are for this
    process (the demo's ``SB_BRAIN``, ``SB_VAR_DIR``…), and a service refuses ``SB_*``
    variables it does not read. A service gets its settings from ``ServiceProcess.env``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SB_")}


@dataclass
class ServiceProcess:
    """One service subprocess; ``ready`` waits for its ``$SRV.PING`` answer."""

    module: str
    """Python module to run with ``-m`` (e.g. ``switchboard.consent``)."""
    service: str
    """The ``nats.micro`` service name it registers (e.g. ``consent``)."""
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> ServiceProcess:
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
            out = self._log
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env={**inherited_environment(), **self.env},
            stdout=out,
            stderr=out,
        )
        return self

    async def ready(
        self,
        nats_url: str,
        timeout: float = 20.0,
        *,
        unprobed: frozenset[str] = frozenset(),
        **connect_options: Any,
    ) -> None:
        """Wait until the service reports ``state=ready`` in ``$SRV.INFO`` and every
        endpoint it lists answers a request.

        ``$SRV`` answers as soon as the micro service exists, before its endpoints are
        registered; ``run_service`` flips the metadata after setup, and each endpoint is
        then probed with an empty body (a ``bad_request`` reply proves it is subscribed).
        ``connect_options`` go to ``nats.connect`` (e.g. the ``ops`` user's credentials and
        inbox prefix when NATS permissions are on); ``unprobed`` are endpoints that user may
        not send to (they would only time out).
        """
        nc = await nats.connect(nats_url, **connect_options)
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise LaunchError(
                        f"{self.module} exited with {self.process.returncode}; see {self.log_path}."
                    )
                try:
                    reply = await nc.request(f"$SRV.INFO.{self.service}", b"", timeout=0.5)
                    info = json.loads(reply.data)
                    endpoints = [e["subject"] for e in info["endpoints"]]
                    if (info.get("metadata") or {}).get("state") == "ready":
                        for subject in endpoints:
                            if subject not in unprobed:
                                await nc.request(subject, b"", timeout=0.5)
                        return
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    pass
                await asyncio.sleep(0.05)
            raise LaunchError(f"{self.module} did not become ready within {timeout} s.")
        finally:
            await nc.close()

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait for a clean drain, SIGKILL if it hangs; returns the exit code."""
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
