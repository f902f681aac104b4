"""``eventually``: returns what the check found, retries only what it is told to, and
fails naming what never happened."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re

import pytest

from switchboard.testing import eventually


async def test_it_returns_the_first_truthy_result_of_a_sync_check() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter) >= 3 and "done", interval=0.001) == "done"
    assert next(counter) == 4  # checked four times, then stopped


async def test_it_awaits_an_async_check() -> None:
    seen: list[int] = []

    async def grows() -> list[int]:
        seen.append(len(seen))
        return seen if len(seen) == 3 else []

    assert await eventually(grows, interval=0.001) == [0, 1, 2]


async def test_a_failed_assert_inside_the_check_means_not_yet() -> None:
    calls = itertools.count(1)

    def third_time_lucky() -> int:
        n = next(calls)
        assert n >= 3, f"only {n} calls"
        return n

    assert await eventually(third_time_lucky, interval=0.001) == 3


async def test_other_exceptions_propagate_at_once() -> None:
    calls = itertools.count(1)

    def broken() -> bool:
        next(calls)
        raise KeyError("no such thing")

    with pytest.raises(KeyError, match="no such thing"):
        await eventually(broken, interval=0.001)
    assert next(calls) == 2


async def test_retry_on_names_the_exceptions_that_mean_not_yet() -> None:
    calls = itertools.count(1)

    async def lookup() -> str:
        if next(calls) < 3:
            raise LookupError("not stored yet")
        return "stored"

    assert await eventually(lookup, interval=0.001, retry_on=(LookupError,)) == "stored"


async def test_the_timeout_names_the_lambda_and_its_last_result() -> None:
    queue: list[str] = ["a"]
    with pytest.raises(AssertionError) as failed:
        await eventually(lambda: len(queue) == 2, timeout=0.05, interval=0.001)
    text = str(failed.value)
    assert text.startswith("Timed out after 0.05 s waiting for ")
    assert "lambda: len(queue) == 2" in text
    assert re.search(r"\(\d+ checks\)", text)
    assert text.endswith("the last check returned False.")


async def test_the_timeout_uses_the_message_and_reports_the_last_retried_error() -> None:
    def never() -> None:
        raise AssertionError("the ledger holds 0 records")

    with pytest.raises(AssertionError) as failed:
        await eventually(never, timeout=0.05, interval=0.001, message="one record in the ledger")
    assert str(failed.value).startswith("Timed out after 0.05 s waiting for one record in")
    assert str(failed.value).endswith(
        "the last check raised AssertionError: the ledger holds 0 records"
    )


async def test_a_named_check_is_described_by_its_name() -> None:
    async def consumer_drained() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"waiting for .*consumer_drained .*returned False"):
        await eventually(consumer_drained, timeout=0.05, interval=0.001)


async def test_a_check_that_hangs_is_cut_off_at_the_bound() -> None:
    started = asyncio.Event()

    async def hangs() -> bool:
        started.set()
        await asyncio.Event().wait()
        return True

    with pytest.raises(AssertionError, match="the first check did not finish"):
        await eventually(hangs, timeout=0.05)
    assert started.is_set()


async def test_a_timeout_raised_by_the_check_itself_is_not_taken_for_the_bound() -> None:
    def times_out() -> bool:
        raise TimeoutError("the check's own")

    with pytest.raises(TimeoutError, match="the check's own"):
        await eventually(times_out, timeout=5)


async def test_a_bound_or_interval_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        await eventually(lambda: True, timeout=0)
    with pytest.raises(ValueError, match="positive"):
        await eventually(lambda: True, interval=0)


async def test_a_check_that_swallows_the_cancellation_still_meets_the_bound() -> None:
    async def stubborn() -> bool:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.2)
        return False

    with pytest.raises(AssertionError, match=r"\(1 check\); the last check returned False"):
        await eventually(stubborn, timeout=0.05)
