"""``SB_BRAIN=openai OPENAI_BASE_URL=… make demo``: the whole demo through the OpenAI plugin.

The model is the scripted OpenAI-compatible server answering like the rules brain
(``python -m switchboard.testing.rules_model``), run as its own process, as a user would
run a local model server; the demo starts NATS and the services itself. Afterwards every
event the demo stored is read back from its NATS store and checked with integrators' own
tools (``tests/conformance.py``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nats

from switchboard.contracts.streams import EVENTS
from switchboard.devstack.natsserver import NatsServer
from tests.conformance import StoredEvent, event_problems, run_node_checks, write_events

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_plays_every_scenario_through_the_openai_plugin(
    tmp_path: Path, node_checks: tuple[str, Path]
) -> None:
    model = subprocess.Popen(
        [sys.executable, "-m", "switchboard.testing.rules_model"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert model.stdout is not None
        first = model.stdout.readline().strip()
        assert first.startswith("OPENAI_BASE_URL=http://127.0.0.1:"), first
        env = {
            **os.environ,
            "SB_BRAIN": "openai",
            "OPENAI_API_KEY": "test",
            "OPENAI_BASE_URL": first.split("=", 1)[1],
            "SB_VAR_DIR": str(tmp_path / "var"),
        }
        demo = subprocess.run(
            [sys.executable, "-m", "switchboard.simulation", "demo"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        model.terminate()
        out, err = model.communicate(timeout=20)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-2000:]
    assert "Language model: gpt-4.1-mini" in demo.stdout
    assert demo.stdout.count("PASSED  ") == len(list((ROOT / "scenarios").glob("*.toml")))
    assert model.returncode == 0, err
    served = int(out.split("Served ", 1)[1].split(" ", 1)[0])
    assert served > 20

    # Every event of every scenario, as stored, passes the integrators' tools.
    with NatsServer(store_dir=tmp_path / "var" / "nats") as server:
        stored = asyncio.run(_stored_events(server.url))
    assert len(stored) > 50
    problems = {event.body[:120]: event_problems(event) for event in stored}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}
    node, workdir = node_checks
    summary = run_node_checks(workdir, node, write_events(stored, tmp_path / "events.jsonl"))
    assert summary["events"] == len(stored)


async def _stored_events(url: str) -> list[StoredEvent]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(EVENTS.name)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(EVENTS.name, seq)
            assert msg.data is not None
            out.append(StoredEvent(dict(msg.headers or {}), msg.data))
        return out
    finally:
        await nc.close()
