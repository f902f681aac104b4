"""``SB_BRAIN=openai OPENAI_BASE_URL=… make demo``: the whole demo through the OpenAI plugin.

The model is the scripted OpenAI-compatible server answering like the rules brain
(``python -m switchboard.testing.rules_model``), run as its own process, as a user would
run a local model server; the demo starts NATS and the services itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_plays_every_scenario_through_the_openai_plugin(tmp_path: Path) -> None:
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
