"""The command line an auditor uses: verify and export, with keys found beside the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from switchboard.consent.app import open_ledger
from switchboard.consent.settings import ConsentSettings
from switchboard.contracts.consent import RecordConsent

Command = Callable[..., RecordConsent]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_")}
    return subprocess.run(
        [sys.executable, "-m", "switchboard.consent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_keys_live_beside_a_sqlite_ledger_and_the_tools_find_them(
    tmp_path: Path, command: Command
) -> None:
    db = tmp_path / "consent" / "ledger.db"
    ledger = open_ledger(ConsentSettings(ledger_db=str(db)))
    try:
        mine = [command(caller_number="+14155550111", call_id=f"cli-{i}") for i in range(3)]
        ledger.append([*mine, command(caller_number="+12125550112")])
        ledger.checkpoint()
    finally:
        ledger.store.close()
    assert (db.parent / "ledger-secret.key").stat().st_mode & 0o777 == 0o600
    assert (db.parent / "checkpoint-ed25519.pem").exists()

    verified = _cli("verify", "--db", str(db))
    assert verified.returncode == 0, verified.stderr
    assert "OK: 4 records and 1 checkpoints" in verified.stdout
    assert "warning" not in verified.stderr  # trusted the ledger's own key file

    exported = _cli("export", "--db", str(db), "--caller", "+1 415 555 0111")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["call_id"] for r in lines] == ["cli-0", "cli-1", "cli-2"]
    assert {r["caller_number"] for r in lines} == {"+14155550111"}
    assert all(r["notice_version"] == "ask-2025-01:en" and not r["erased"] for r in lines)


def test_export_without_the_secret_fails_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = open_ledger(ConsentSettings(ledger_db=str(db)))
    ledger.store.close()
    (tmp_path / "ledger-secret.key").unlink()
    result = _cli("export", "--db", str(db), "--caller", "+14155550111")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
