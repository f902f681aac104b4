"""``make demo``: NATS, the three backend services and the demo CRM as real processes,
then every scenario in ``scenarios/`` through the real agent graph, printed as it happens,
and at the end each call's timeline as the demo CRM recorded it from its durable consumer.

State is kept under ``var/``: the NATS store (``var/nats``), the consent ledger
(``var/consent/ledger.db``, which ``python -m switchboard.consent verify`` can check
afterwards), the CRM's timelines (``var/crm/timeline.txt``) and each service's log
(``var/logs/<service>.log``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from livekit.agents import llm

from switchboard.devstack.launcher import (
    BACKENDS,
    LaunchError,
    ServiceProcess,
    local_settings,
    provision,
)
from switchboard.devstack.natsserver import NatsServer, NatsServerError
from switchboard.simulation import report as reports
from switchboard.simulation import scenario as scenarios
from switchboard.simulation.runner import Live, run_scenario
from switchboard.simulation.settings import SimulationSettings
from switchboard.voice import providers
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.wiring import open_bus

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the demo keeps its state."""

    var: Path

    @property
    def nats(self) -> Path:
        return self.var / "nats"

    @property
    def logs(self) -> Path:
        return self.var / "logs"

    @property
    def ledger(self) -> Path:
        return self.var / "consent" / "ledger.db"

    @property
    def timeline(self) -> Path:
        return self.var / "crm" / "timeline.txt"


def _print(text: str = "") -> None:
    print(text, flush=True)


def run_demo(settings: SimulationSettings, scenarios_dir: Path) -> int:
    """Start NATS, run the services and the scenarios, stop everything; the exit code."""
    try:
        chat_model = providers.language_model(settings, os.environ)
    except providers.ProviderError as exc:
        _print(str(exc))
        return 2
    layout = Layout(Path(settings.var_dir).resolve())
    files = scenarios.discover(scenarios_dir)
    if not files:
        _print(f"No scenarios found in {scenarios_dir}.")
        return 1
    for directory in (layout.nats, layout.logs, layout.ledger.parent, layout.timeline.parent):
        directory.mkdir(parents=True, exist_ok=True)
    try:
        server = NatsServer(store_dir=layout.nats).start()
    except NatsServerError as exc:
        _print(f"Could not start nats-server: {exc}")
        return 1
    _print(f"NATS with JetStream at {server.url} (store {layout.nats})")
    try:
        results = asyncio.run(_with_services(settings, server.url, layout, files, chat_model))
    finally:
        server.stop()
    if results is None:
        return 1
    if layout.timeline.exists():
        _print("")
        _print("The demo CRM's timeline of each call (its durable consumer on SB_EVENTS):")
        _print(layout.timeline.read_text().rstrip())
    _print("")
    _print("Summary:")
    for name, ok in results:
        _print(f"  {'PASSED' if ok else 'FAILED'}  {name}")
    _print(f"\nLedger: {layout.ledger} (python -m switchboard.consent verify --db {layout.ledger})")
    _print(f"CRM:    {layout.timeline}")
    _print(f"Logs:   {layout.logs}/")
    return 0 if all(ok for _, ok in results) else 1


async def _with_services(
    settings: SimulationSettings,
    url: str,
    layout: Layout,
    files: list[Path],
    chat_model: llm.LLM[Any],
) -> list[tuple[str, bool]] | None:
    env = {"SB_NATS_URL": url, "SB_LOG_LEVEL": "INFO"}
    # Each service gets only the SB_* settings it reads; a service refuses others.
    own_env = {
        "consent": {"SB_LEDGER_DB": str(layout.ledger)},
        "crm": {"SB_CRM_TIMELINE_FILE": str(layout.timeline)},
    }
    procs = [
        ServiceProcess(
            module,
            name,
            env={**env, **local_settings(name), **own_env.get(name, {})},
            log_path=layout.logs / f"{name}.log",
        )
        for module, name in BACKENDS
    ]
    try:
        # Streams first, by the provisioning step: services only check they exist.
        await asyncio.to_thread(provision, url)
        for proc in procs:
            proc.start()
        for proc in procs:
            await proc.ready(url, timeout=READY_TIMEOUT_S)
            _print(f"  {proc.service:>10} ready  (python -m {proc.module}, log {proc.log_path})")
        return await _play(msgspec.structs.replace(settings, nats_url=url), files, chat_model)
    except LaunchError as exc:
        _print(f"A service did not start: {exc}")
        return None
    finally:
        for proc in reversed(procs):
            # Each service drains on SIGTERM; stopping them one by one keeps logs in order.
            code = await asyncio.to_thread(proc.stop)
            log.info("Service stopped.", extra={"service": proc.service, "code": code})


async def _play(
    settings: VoiceSettings, files: list[Path], chat_model: llm.LLM[Any]
) -> list[tuple[str, bool]]:
    _print(f"Language model: {chat_model.model} (SB_BRAIN={settings.brain})")
    bus = await open_bus(settings)
    live = Live(
        on_line=lambda line: _print(reports.format_line(line)),
        on_event=lambda event: _print(reports.format_event(event)),
    )
    results: list[tuple[str, bool]] = []
    try:
        for path in files:
            try:
                scenario = scenarios.load(path)
            except scenarios.ScenarioError as exc:
                _print(str(exc))
                results.append((path.name, False))
                continue
            _print("")
            _print("═" * 100)
            _print(f"{path.name}: {scenario.name}")
            _print("═" * 100)
            report = await run_scenario(scenario, bus, settings, live, chat_model=chat_model)
            for line in reports.render_tail(report).splitlines():
                _print(line)
            results.append((path.name, report.ok))
    finally:
        await bus.close()
    return results
