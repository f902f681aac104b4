"""A bounded poll for tests: wait until a check passes, or fail saying what never happened.

Tests wait on a signal when the code gives one (an event, a message, a reply). When the
effect is only visible by looking (a row in a table, a consumer's counters, a log line),
``eventually`` looks again every ``interval`` until ``timeout`` and fails with an
``AssertionError`` naming what was awaited and the last result or error it saw. It never
shows that something did *not* happen: for that, wait for a later marker that travels
the same ordered path, then assert.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_INTERVAL_S = 0.01

_NOTHING = object()


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str | None = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str | None = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def eventually(
    check: Callable[[], object],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = DEFAULT_INTERVAL_S,
    message: str | None = None,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
) -> object:
    """Call ``check`` (sync or async) until it returns something truthy, and return that.

    An exception of a type in ``retry_on`` counts as "not yet" (by default a failed
    ``assert`` inside the check); any other exception propagates at once. When
    ``timeout`` seconds pass, raises ``AssertionError`` with ``message`` (or a description
    of ``check``), how many checks ran, and the last falsy result or retried error.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError("eventually() needs a positive timeout and interval.")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    bound = asyncio.timeout_at(deadline)
    checks = 0
    last: object = _NOTHING
    try:
        async with bound:
            while True:
                checks += 1
                try:
                    result = check()
                    if inspect.isawaitable(result):
                        result = await result
                except retry_on as exc:
                    last = exc
                else:
                    if result:
                        return result
                    last = result
                if loop.time() >= deadline:
                    break  # a check that swallowed the bound's cancellation
                await asyncio.sleep(interval)
    except TimeoutError:
        if not bound.expired():
            raise  # the check's own TimeoutError, not in retry_on
    what = message or _describe(check)
    tries = f"{checks} check{'' if checks == 1 else 's'}"
    raise AssertionError(
        f"Timed out after {timeout:g} s waiting for {what} ({tries}); {_last(last)}"
    )


def _last(last: object) -> str:
    if last is _NOTHING:
        return "the first check did not finish."
    if isinstance(last, BaseException):
        return f"the last check raised {type(last).__name__}: {last}"
    return f"the last check returned {last!r}."


def _describe(check: Callable[[], object]) -> str:
    """The check's name, or for a lambda the source line that defines it."""
    name = getattr(check, "__qualname__", None) or repr(check)
    if name.rsplit(".", 1)[-1] != "<lambda>":
        return name
    try:
        lines, _ = inspect.getsourcelines(check)
    except (OSError, TypeError):
        return name
    return " ".join(line.strip() for line in lines)
