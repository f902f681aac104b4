"""Reloading the rules file: good edits take effect, bad ones leave the old rules in force."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import pytest

from switchboard.escalation.reloader import RulesHolder
from switchboard.escalation.rules_file import load_rules
from switchboard.testing import eventually

GOOD = (Path(__file__).parent / "data" / "rules.toml").read_text()


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(GOOD)
    return path


def test_a_valid_edit_replaces_the_rules(rules_file: Path) -> None:
    holder = RulesHolder(load_rules(rules_file), str(rules_file))
    before = holder()
    rules_file.write_text(GOOD.replace("base = 10", "base = 15"))
    assert holder.reload()
    assert holder().priority.base == 15
    assert holder().version != before.version


def test_an_invalid_edit_keeps_the_previous_rules_and_says_why(
    rules_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = RulesHolder(load_rules(rules_file), str(rules_file))
    before = holder()
    rules_file.write_text(GOOD.replace('timezone = "UTC"', 'timezone = "Nowhere/Zone"'))
    with caplog.at_level(logging.ERROR):
        assert not holder.reload()
    assert holder() is before
    record = next(r for r in caplog.records if "keeping the previous rules" in r.getMessage())
    assert "Nowhere/Zone" in record.__dict__["error"]


def test_a_deleted_file_keeps_the_previous_rules(rules_file: Path) -> None:
    holder = RulesHolder(load_rules(rules_file), str(rules_file))
    before = holder()
    rules_file.unlink()
    assert not holder.reload()
    assert holder() is before


def test_the_shipped_default_is_never_reloaded() -> None:
    holder = RulesHolder(load_rules())
    assert not holder.reload()


def edit_base_priority(path: Path, base: int) -> None:
    path.write_text(GOOD.replace("base = 10", f"base = {base}"))
    # Some filesystems keep mtime coarse; move it so the change is visible.
    os.utime(path, ns=(0, 10**9))


async def test_a_changed_file_is_picked_up_by_the_watcher(rules_file: Path) -> None:
    holder = RulesHolder(load_rules(rules_file), str(rules_file))
    edit_base_priority(rules_file, 12)
    watcher = asyncio.create_task(holder.poll(0.01))
    try:
        await eventually(lambda: holder().priority.base == 12)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
