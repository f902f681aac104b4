"""WatchedFile: reload on change and on SIGHUP, refuse bad files, keep the value in force."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from switchboard.runtime.watch import WatchedFile, WatchLog, signature
from switchboard.testing import eventually

LOG = WatchLog(loaded="Loaded the test value.", refused="Refused the test file.")


class BadFile(ValueError):
    pass


def load_number(path: Path | None) -> int:
    """A file holding one integer; anything else is refused."""
    if path is None:
        return 0
    try:
        return int(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadFile(f"{path.name} does not hold a number: {type(exc).__name__}.") from None


def write(path: Path, text: str, stamp: int) -> None:
    """Write and give the file its own mtime (coarse clocks must not hide an edit)."""
    path.write_text(text)
    os.utime(path, ns=(stamp * 10**9, stamp * 10**9))


@pytest.fixture
def number_file(tmp_path: Path) -> Path:
    path = tmp_path / "number.txt"
    write(path, "1", 1)
    return path


def watched(
    path: Path | None,
    *,
    unchanged: Callable[[int, int], bool] | None = None,
    describe: Callable[[int], Mapping[str, object]] = lambda _: {},
) -> WatchedFile[int]:
    return WatchedFile(
        path, load_number, LOG, refused=(BadFile,), unchanged=unchanged, describe=describe
    )


def test_the_value_is_loaded_at_start_and_reloaded_only_when_the_file_changed(
    number_file: Path,
) -> None:
    watcher = watched(number_file)
    assert watcher.value == 1
    assert watcher.check() is False  # nothing moved
    write(number_file, "2", 2)
    assert watcher.changed()
    assert watcher.check() is True
    assert watcher.value == 2
    assert watcher.check() is False


def test_a_bad_file_keeps_the_previous_value_and_logs_why(
    number_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = watched(number_file, describe=lambda n: {"version": n})
    write(number_file, "two", 2)
    with caplog.at_level(logging.WARNING):
        assert watcher.check() is False
    assert watcher.value == 1
    assert watcher.last_error == "number.txt does not hold a number: ValueError."
    record = next(r for r in caplog.records if r.getMessage() == LOG.refused)
    assert record.levelno == logging.WARNING
    assert record.__dict__["error"] == watcher.last_error
    assert record.__dict__["version"] == 1  # what stays in force
    assert watcher.check() is False  # the same bad file is not retried until it changes
    write(number_file, "3", 3)
    assert watcher.check() is True
    assert watcher.value == 3
    assert not watcher.last_error


def test_a_deleted_file_keeps_the_previous_value(number_file: Path) -> None:
    watcher = watched(number_file)
    number_file.unlink()
    assert watcher.check() is False
    assert watcher.value == 1
    assert watcher.last_error is not None


def test_a_bad_file_at_start_is_an_error_for_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "number.txt"
    path.write_text("not a number")
    with pytest.raises(BadFile, match="does not hold a number"):
        watched(path)


def test_reload_on_demand_reads_the_file_even_when_its_signature_did_not_move(
    number_file: Path,
) -> None:
    watcher = watched(number_file)
    before = signature(number_file)
    write(number_file, "5", 1)  # same size, same mtime, same inode
    assert signature(number_file) == before
    assert watcher.check() is False
    assert watcher.reload() is True
    assert watcher.value == 5


def test_an_unchanged_value_is_not_a_swap_and_is_not_logged(
    number_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = watched(number_file, unchanged=lambda old, new: old == new)
    write(number_file, "01", 2)
    with caplog.at_level(logging.INFO):
        assert watcher.check() is False
    assert LOG.loaded not in caplog.messages
    write(number_file, "7", 3)
    with caplog.at_level(logging.INFO):
        assert watcher.check() is True
    assert LOG.loaded in caplog.messages


def test_a_swap_logs_the_new_and_the_previous_description(
    number_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = watched(number_file, describe=lambda n: {"version": n})
    write(number_file, "8", 2)
    with caplog.at_level(logging.INFO):
        watcher.check()
    record = next(r for r in caplog.records if r.getMessage() == LOG.loaded)
    assert (record.__dict__["version"], record.__dict__["previous_version"]) == (8, 1)


def test_without_a_file_the_value_is_fixed(tmp_path: Path) -> None:
    watcher = watched(None)
    assert watcher.value == 0
    assert watcher.check() is False
    assert watcher.reload() is False


async def test_polling_picks_up_an_edit(number_file: Path) -> None:
    watcher = watched(number_file)
    watcher.start(0.01, sighup=False)
    try:
        write(number_file, "4", 2)
        await eventually(lambda: watcher.value == 4, message="the poll picking up the edit")
    finally:
        await watcher.stop()


async def test_sighup_reloads_and_stop_removes_the_handler(number_file: Path) -> None:
    watcher = watched(number_file)
    watcher.start(0)  # no polling: only the signal reloads
    try:
        write(number_file, "6", 1)  # invisible to the signature
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: watcher.value == 6, message="the SIGHUP reload")
    finally:
        await watcher.stop()
    assert not asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


async def test_a_failing_loader_does_not_end_the_polling(
    number_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Path | None] = []

    def flaky(path: Path | None) -> int:
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("a bug in the loader")
        return load_number(path)

    watcher = WatchedFile(number_file, flaky, LOG, refused=(BadFile,))
    watcher.start(0.01, sighup=False)
    try:
        with caplog.at_level(logging.ERROR):
            write(number_file, "2", 2)
            await eventually(lambda: len(calls) == 2, message="the failing reload")
            write(number_file, "3", 3)
            await eventually(lambda: watcher.value == 3, message="the reload after the failure")
        assert "Reloading a watched file failed; the value in force stays." in caplog.messages
    finally:
        await watcher.stop()
