"""The deployment check, step by step (see the package docstring for what it proves)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import nats
from nats.aio.client import Client as NATS

from switchboard.contracts.subjects import inbox_prefix
from switchboard.ops import permissions
from switchboard.testing import postgres
from switchboard.testing.openai_server import OpenAIServer
from switchboard.testing.otlp import CallTrace, OtlpReceiver, ReceivedSpan, trace_of
from switchboard.testing.rules_model import rules_policy
from switchboard.voice.tracing import CALL_SPAN
from tools.deploycheck import containers, examples, infra, manifests
from tools.deploycheck.fakelivekit import FakeLiveKit
from tools.deploycheck.podspec import ContainerRun, Sources, plan, write_volumes

SERVICES = {
    "switchboard.consent": "consent",
    "switchboard.escalation": "escalation",
    "switchboard.sip_bridge": "sip-bridge",
}
"""Module a container runs → the ``nats.micro`` service it registers."""
VOICE_MODULE = "switchboard.voice"
PROVISION_MODULE = "switchboard.runtime.provision"
"""The provisioning Job's module: it runs to completion before any service starts."""
SIMULATION_IMAGE = "switchboard/simulation:latest"
TRACE_SERVICES = {"voice", "consent", "escalation", "sip-bridge"}
READY_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 180.0
TRACE_TIMEOUT_S = 30.0
POLL_S = 0.25


class CheckFailed(RuntimeError):
    """The deployment does not run as its manifests say."""


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append(text)
        print(text, flush=True)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The cluster services the manifests and Secrets name, and where the check serves them."""

    address: str
    nats: tuple[str, int]
    collector: tuple[str, int]
    database: Any  # urllib SplitResult of the ledger DSN
    livekit: tuple[str, int]
    replicas: int
    """JetStream replicas the services ask for: the NATS cluster has as many servers."""

    def hosts(self) -> list[str]:
        names = {self.nats[0], self.collector[0], self.database.hostname, self.livekit[0]}
        return [f"--add-host={name}:{self.address}" for name in sorted(names)]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise CheckFailed(f"{url} names no host and port.")
    return parts.hostname, parts.port


def find_endpoints(runs: dict[str, ContainerRun], host_ports: list[int]) -> Endpoints:
    by_module = {run.argv[2]: run for run in runs.values()}
    env = by_module["switchboard.consent"].env
    voice = by_module[VOICE_MODULE].env
    nats_host = _host_port(env["SB_NATS_URL"])
    collector = _host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    database = urlsplit(env["SB_LEDGER_DB"])
    livekit = _host_port(voice["LIVEKIT_URL"])
    ports = [nats_host[1], collector[1], database.port or 5432, livekit[1]]
    if not infra.free_on("0.0.0.0", host_ports):
        raise CheckFailed(f"Container port(s) {host_ports} are in use on this host.")
    replicas = int(env.get("SB_STREAM_REPLICAS", "1"))
    return Endpoints(infra.pick_address(ports), nats_host, collector, database, livekit, replicas)


async def _ops_client(endpoints: Endpoints, generated: examples.Generated, workdir: Path) -> NATS:
    """A client as the ``ops`` user (mutual TLS, its own certificate) for readiness probes."""
    files = generated.ca.write(workdir / "ops", "ops", generated.client("ops"))
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(files.cert, files.key)
    return await nats.connect(
        f"tls://{endpoints.address}:{endpoints.nats[1]}",
        tls=context,
        tls_hostname=endpoints.nats[0],
        tls_handshake_first=True,
        user=permissions.Role.OPS.value,
        password=generated.password(f"nats-{permissions.Role.OPS.value}"),
        inbox_prefix=inbox_prefix(permissions.Role.OPS.value),
        allow_reconnect=False,
    )


async def wait_jetstream(nc: NATS) -> None:
    """JetStream answers (a cluster has elected its meta leader) before services start."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(nats.errors.NoRespondersError, nats.errors.TimeoutError):
            reply = json.loads((await nc.request("$JS.API.INFO", b"", timeout=1)).data)
            if "error" not in reply:
                return
        await asyncio.sleep(POLL_S)
    raise CheckFailed(f"JetStream not available after {READY_TIMEOUT_S} s.")


async def _fail_if_exited(run: ContainerRun) -> None:
    if not await containers.running(run.name):
        state = await containers.state(run.name)
        raise CheckFailed(
            f"{run.deployment} exited with {state.get('ExitCode')} before it was ready:\n"
            + await containers.logs(run.name)
        )


async def wait_service_ready(nc: NATS, run: ContainerRun, service: str) -> None:
    """``$SRV.PING`` answers and ``$SRV.INFO`` says every endpoint is registered."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        await _fail_if_exited(run)
        with contextlib.suppress(nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await nc.request(f"$SRV.PING.{service}", b"", timeout=1)
            info = json.loads((await nc.request(f"$SRV.INFO.{service}", b"", timeout=1)).data)
            if (info.get("metadata") or {}).get("state") == "ready":
                return
        await asyncio.sleep(POLL_S)
    raise CheckFailed(f"{run.deployment} not ready after {READY_TIMEOUT_S} s.")


def _http_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body: bytes = response.read()
            return body.decode(errors="replace")
    except OSError as exc:
        raise CheckFailed(f"{url}: {exc}") from None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


LOAD_METRIC = "lk_agents_worker_load"
"""The worker's load as Prometheus reads it from the ``metrics`` port (scaling input)."""
JOB_PROCESS_READY = '"process initialized"'
JOB_PROCESS_FAILED = '"error initializing process"'


async def _job_processes_ready(run: ContainerRun) -> bool:
    """A prewarmed job process (VAD loaded, tracing set up) exists: a dispatched call would
    start. The worker's health endpoint says 200 even when none can start, so the check
    reads the worker's log, and fails at once when a job process cannot be created."""
    logs = await containers.logs(run.name, tail=None)
    if JOB_PROCESS_FAILED in logs:
        failure = next(line for line in logs.splitlines() if JOB_PROCESS_FAILED in line)
        raise CheckFailed(f"voice-worker cannot start job processes: {failure[:3000]}")
    return JOB_PROCESS_READY in logs


async def wait_voice_ready(run: ContainerRun, livekit: FakeLiveKit) -> None:
    """Registered with LiveKit under its agent name, its readiness probe passes, and a job
    process is ready for a call."""
    probe = run.readiness
    if probe is None:
        raise CheckFailed("The voice worker has no readiness probe.")
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://127.0.0.1:{probe.port}{probe.path}"
    while time.monotonic() < deadline:
        await _fail_if_exited(run)
        if (
            livekit.registered.is_set()
            and await asyncio.to_thread(_http_ok, url)
            and await _job_processes_ready(run)
        ):
            names = {r.agent_name for r in livekit.registrations}
            if run.env.get("SB_AGENT_NAME", "switchboard") not in names:
                raise CheckFailed(f"The worker registered as {names}, not as configured.")
            if "metrics" in run.ports:
                metrics = await asyncio.to_thread(
                    _http_text, f"http://127.0.0.1:{run.ports['metrics']}/metrics"
                )
                if LOAD_METRIC not in metrics:
                    raise CheckFailed(f"The metrics port does not export {LOAD_METRIC}.")
            return
        await asyncio.sleep(POLL_S)
    raise CheckFailed(f"voice-worker did not register with LiveKit within {READY_TIMEOUT_S} s.")


def one_trace(spans: list[ReceivedSpan]) -> CallTrace | None:
    """The call's trace, once each backend has a span in it whose parent is a voice span
    (the request crossed NATS with its trace context)."""
    found = trace_of(spans, "voice", CALL_SPAN)
    if found is None:
        return None
    children = {child for parent, child in found.crossings if parent == "voice"}
    return found if TRACE_SERVICES - {"voice"} <= children else None


class Check:
    """One run of the check over one rendered overlay."""

    def __init__(self, overlay: Path, scenario: Path, workdir: Path, kubectl: str) -> None:
        self.overlay, self.scenario, self.workdir = overlay, scenario, workdir
        self.kubectl = kubectl
        self.report = Report()
        self.generated = examples.Generated()
        self.started: list[ContainerRun] = []

    def plan(self) -> tuple[dict[str, ContainerRun], Sources, list[manifests.Doc]]:
        """Every Job and Deployment as a ``podman run``, Jobs first."""
        docs = manifests.render(self.overlay, self.kubectl)
        config_maps = {
            n: d.get("data", {}) for n, d in manifests.by_name(docs, "ConfigMap").items()
        }
        secrets = examples.materialise(examples.load(), self.generated)
        sources = Sources(config_maps, secrets)
        runs = {
            name: plan(d, sources, self.workdir / "volumes" / name)
            for name, d in manifests.workloads(docs).items()
        }
        return runs, sources, docs

    @contextlib.contextmanager
    def servers(self, endpoints: Endpoints) -> Iterator[OtlpReceiver]:
        """NATS, PostgreSQL and the OTLP receiver for the run (LiveKit is async)."""
        infra_dir = self.workdir / "infra"
        infra_dir.mkdir(parents=True, exist_ok=True)
        passwords = infra.nats_passwords(lambda user: self.generated.password(f"nats-{user}"))
        nats_processes = infra.start_nats(
            address=endpoints.address,
            port=endpoints.nats[1],
            hostname=endpoints.nats[0],
            replicas=endpoints.replicas,
            ca=self.generated.ca,
            passwords=passwords,
            workdir=infra_dir,
        )
        db = endpoints.database
        pg_files = self.generated.ca.write(
            infra_dir, "postgres", self.generated.ca.issue("ledger-db", dns_names=[db.hostname])
        )
        receiver = OtlpReceiver(endpoints.address, endpoints.collector[1])
        try:
            with (
                postgres.tls_server(
                    host=endpoints.address,
                    port=db.port or 5432,
                    tls=pg_files,
                    user=db.username,
                    password=db.password,
                    database=db.path.lstrip("/"),
                ),
                receiver,
            ):
                self.report.say(
                    f"cluster stand-ins on {endpoints.address}: NATS ({endpoints.replicas} "
                    f"servers, mutual TLS, generated users) :{endpoints.nats[1]}, "
                    "PostgreSQL (TLS only) "
                    f":{db.port}, OTLP receiver :{endpoints.collector[1]}, LiveKit "
                    f"agent endpoint :{endpoints.livekit[1]}"
                )
                yield receiver
        finally:
            infra.stop_all(nats_processes)

    @contextlib.asynccontextmanager
    async def livekit(
        self, endpoints: Endpoints, voice: ContainerRun
    ) -> AsyncIterator[FakeLiveKit]:
        fake = FakeLiveKit(
            endpoints.address,
            endpoints.livekit[1],
            voice.env["LIVEKIT_API_KEY"],
            voice.env["LIVEKIT_API_SECRET"],
        )
        await fake.start()
        try:
            yield fake
        finally:
            await fake.stop()

    async def start_all(
        self, runs: dict[str, ContainerRun], extra: list[str], nc: NATS, livekit: FakeLiveKit
    ) -> None:
        for run in runs.values():
            write_volumes(run)
            began = time.monotonic()
            if run.argv[2] == PROVISION_MODULE:
                # A Job: run once to the end, as the services' streams depend on it.
                done = await containers.run_to_end(run, extra, READY_TIMEOUT_S)
                if done.code != 0:
                    raise CheckFailed(
                        f"{run.deployment} failed ({done.code}):\n{done.stderr[-3000:]}"
                    )
                self.report.say(
                    f"  {run.deployment:18} done  in {time.monotonic() - began:5.1f} s: exit 0"
                )
                continue
            await containers.start(run, extra)
            self.started.append(run)
            module = run.argv[2]
            if module == VOICE_MODULE:
                await wait_voice_ready(run, livekit)
                how = "registered with LiveKit, probe 200, a job process, load metric"
            else:
                await wait_service_ready(nc, run, SERVICES[module])
                how = f"$SRV.PING and $SRV.INFO state=ready ({SERVICES[module]})"
            self.report.say(
                f"  {run.deployment:18} ready in {time.monotonic() - began:5.1f} s: {how}"
            )

    async def call(
        self, voice: ContainerRun, sources: Sources, docs: list[manifests.Doc], extra: list[str]
    ) -> dict[str, Any]:
        """The scripted call, run as the voice worker's pod with the simulation image. The
        pod's model (``SB_BRAIN=openai``) is a local OpenAI-compatible stand-in that answers
        like the rules brain, through the real OpenAI plugin."""
        async with OpenAIServer(rules_policy()) as model:
            return await self._call(voice, sources, docs, extra, model.base_url)

    async def _call(
        self,
        voice: ContainerRun,
        sources: Sources,
        docs: list[manifests.Doc],
        extra: list[str],
        model_url: str,
    ) -> dict[str, Any]:
        deployment = manifests.by_name(docs, "Deployment")["voice-worker"]
        caller = plan(
            deployment, sources, self.workdir / "volumes" / "voice-worker-call", suffix="-call"
        )
        caller.image = SIMULATION_IMAGE
        if caller.env.get("SB_BRAIN") == "openai":
            caller.env["OPENAI_BASE_URL"] = model_url
            caller.options.append("--env=OPENAI_BASE_URL")
        caller.argv = [
            "python",
            "-m",
            "switchboard.simulation",
            "run-scenario",
            f"/scenarios/{self.scenario.name}",
            "--json",
        ]
        write_volumes(caller)
        began = time.monotonic()
        done = await containers.run_to_end(
            caller, [*extra, f"--volume={self.scenario.parent}:/scenarios:ro"], CALL_TIMEOUT_S
        )
        if done.code not in (0, 1):
            raise CheckFailed(
                f"The scripted call failed to run ({done.code}):\n{done.stderr[-3000:]}"
            )
        report: dict[str, Any] = msgspec.json.decode(done.stdout)
        if not report["ok"]:
            failed = [c for c in report["checks"] if not c.get("ok")]
            raise CheckFailed(
                f"The scripted call did not go as scripted: {failed} {report['errors']}"
            )
        self.report.say(
            f"  call {report['scenario']!r} in {time.monotonic() - began:.1f} s: outcome "
            f"{report['outcome']}, consent {report['consent']}, {len(report['receipts'])} "
            f"ledger receipt(s), {len(report['transfers'])} transfer(s), "
            f"{len(report['events'])} events"
        )
        return report

    async def stop_all(self) -> list[str]:
        problems = []
        for run in reversed(self.started):
            began = time.monotonic()
            code = await containers.stop(run.name, run.grace_s)
            took = time.monotonic() - began
            verdict = "clean drain" if code == 0 else "NOT CLEAN"
            self.report.say(
                f"  {run.deployment:18} exit {code} after SIGTERM in {took:4.1f} s "
                f"(grace {run.grace_s} s): {verdict}"
            )
            logs = await containers.logs(run.name, tail=None)
            (self.workdir / "logs").mkdir(exist_ok=True)
            (self.workdir / "logs" / f"{run.deployment}.log").write_text(logs)
            if code != 0:
                problems.append(f"{run.deployment} exited {code}:\n{logs[-4000:]}")
        return problems

    async def verify_ledger(
        self, sources: Sources, docs: list[manifests.Doc], extra: list[str]
    ) -> None:
        """``python -m switchboard.consent verify`` as the ledger's pod: the chain in
        PostgreSQL and its signed checkpoints check out with the mounted key."""
        deployment = manifests.by_name(docs, "Deployment")["consent-ledger"]
        auditor = plan(
            deployment, sources, self.workdir / "volumes" / "consent-verify", suffix="-verify"
        )
        auditor.argv = [*auditor.argv, "verify", "--json"]
        write_volumes(auditor)
        done = await containers.run_to_end(auditor, extra, CALL_TIMEOUT_S)
        if done.code != 0:
            raise CheckFailed(
                f"The ledger does not verify ({done.code}): {done.stdout}{done.stderr}"
            )
        result = json.loads(done.stdout)
        self.report.say(
            f"  ledger verified: {result['records_checked']} record(s), "
            f"{result['checkpoints_checked']} signed checkpoint(s), head {result['head_sequence']}"
        )

    async def run(self) -> None:
        runs, sources, docs = self.plan()
        voice = next(r for r in runs.values() if r.argv[2] == VOICE_MODULE)
        # Containers share the host's network: the ports they declare must be free.
        endpoints = find_endpoints(runs, [p for r in runs.values() for p in r.ports.values()])
        extra = ["--network=host", *endpoints.hosts()]
        self.report.say(f"rendered {self.overlay}: {', '.join(runs)}")
        with self.servers(endpoints) as receiver:
            async with self.livekit(endpoints, voice) as livekit:
                nc = await _ops_client(endpoints, self.generated, self.workdir)
                try:
                    await wait_jetstream(nc)
                    await self.start_all(runs, extra, nc, livekit)
                    await self.call(voice, sources, docs, extra)
                    spans = await asyncio.to_thread(
                        receiver.wait_for, lambda s: one_trace(s) is not None, TRACE_TIMEOUT_S
                    )
                    found = one_trace(spans)
                    if found is None:
                        seen = sorted({s.service for s in spans})
                        raise CheckFailed(
                            f"No one trace across {sorted(TRACE_SERVICES)} (spans from {seen})."
                        )
                    self.report.say(
                        f"  trace {found.trace_id}: {len(found.spans)} spans from "
                        f"{', '.join(sorted(found.services))}, parent/child across NATS"
                    )
                finally:
                    await nc.close()
                    problems = await self.stop_all()
                    for run in self.started:
                        await containers.remove(run.name)
                if problems:
                    raise CheckFailed("\n".join(problems))
                # After the drain, which signs a last checkpoint with the mounted key.
                await self.verify_ledger(sources, docs, extra)
