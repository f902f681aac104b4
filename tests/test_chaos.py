"""A short chaos run (``python -m bench.chaos``): calls through the real services while each
of them is killed, nats-server restarted and the ledger's PostgreSQL connections cut.

Runs the command as CI and an operator would and reads its last line; the run's own
checks are asserted one by one so a failure names which one broke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from switchboard.devstack.launcher import inherited_environment

REPO = Path(__file__).resolve().parents[1]
CALLS = 200
SEED = 7
RUN_TIMEOUT_S = 480


def chaos(tmp_path: Path, postgres: str, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.chaos",
            "--postgres",
            postgres,
            "--keep",
            str(tmp_path),
            *list(args),
        ],
        cwd=REPO,
        env=inherited_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the run stops its services and drops its schema
        stdout, stderr = proc.communicate()
    lines = stdout.strip().splitlines()
    assert lines, stderr[-3000:]
    return proc.returncode, json.loads(lines[-1]), stderr[-3000:]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_calls_survive_killed_services_nats_restarts_and_cut_database_connections(
    tmp_path: Path, postgres_server_dsn: str
) -> None:
    code, result, stderr = chaos(
        tmp_path,
        postgres_server_dsn,
        *("--calls", str(CALLS), "--concurrency", "30", "--seed", str(SEED)),
        *("--fault-every", "1.5"),
        # Copies re-published after 0.1 s are stored, not dropped by JetStream: the
        # consumer's de-duplication by (source, id) is what the event checks rely on.
        *("--duplicate-window", "0.1"),
    )
    failed = [name for name, ok in result["checks"].items() if not ok]
    if failed:
        pytest.fail(f"{failed}\n{json.dumps(result, indent=1)}\n{stderr}")
    assert code == 0
    assert result["ok"]
    assert result["seed"] == SEED
    # Every kind of fault happened, and the calls went on through them.
    assert all(n >= 1 for n in result["kills"].values()), result["kills"]
    assert result["nats_restarts"] >= 1
    assert result["pg_cuts"] >= 1
    assert result["pg_backends_terminated"] >= 1
    assert result["calls"] == CALLS
    ended = ("served", "transferred", "callback", "caller_hung_up")
    assert sum(result[k] for k in ended) == CALLS
    assert result["served"]
    assert result["transferred"]
    assert result["callback"]
    assert result["max_silence_s"] <= 5.0
    # The ledger holds every acknowledged decision once, on a chain that verifies.
    assert result["consent_commands_acked"] > 0
    assert result["ledger_records"] >= result["consent_commands_acked"]
    assert result["duplicates"] == 0
    assert result["missing"] == 0
    assert result["chain_ok"]
    assert result["chain_records_checked"] == result["ledger_records"]
    assert result["transfers"] > 0
    assert result["transfers_without_terminal"] == 0
    assert result["calls_with_legs_left"] == 0
    # A consumer de-duplicating by (source, id) keeps one event per fact; every call has
    # its call.ended and its voice events numbered 1..n.
    assert result["duplicate_window_s"] == 0.1
    assert result["events_unique"] > 0
    assert result["events_stored"] == result["events_unique"] + result["event_copies_dropped"]
    assert result["facts_twice"] == 0
    assert result["identity_conflicts"] == 0
    assert result["calls_without_end"] == 0
    assert result["calls_with_sequence_gaps"] == 0
    assert os.path.isdir(result["logs"])
