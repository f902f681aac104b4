"""The request log: every parsed request in arrival order, with bounded waits.

Tests assert on what each request carried (tools offered, ``tool_choice``, history) and
wait for the n-th request instead of sleeping; a wait that runs out says what did arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, overload

from switchboard.testing.openai_server.requests import Endpoint


class _Summarized(Protocol):
    def summary(self) -> str: ...


T = TypeVar("T", bound=_Summarized)


class RequestLog(Generic[T]):
    """Requests of one endpoint, in arrival order (request n is ``log[n - 1]``)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._items: list[T] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def append(self, item: T) -> None:
        self._items.append(item)
        for count, future in self._waiters:
            if len(self._items) >= count and not future.done():
                future.set_result(None)
        self._waiters = [(c, f) for c, f in self._waiters if not f.done()]

    async def wait_for(self, count: int, *, timeout: float = 5.0) -> T:
        """The ``count``-th request (1-based), waiting at most ``timeout`` seconds for it."""
        if count < 1:
            raise ValueError("count is 1-based: the first request is 1")
        if len(self._items) < count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((count, future))
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                arrived = "; ".join(item.summary() for item in self._items) or "none"
                raise TimeoutError(
                    f"waited {timeout}s for {self._what} #{count}; "
                    f"{len(self._items)} arrived: {arrived}"
                ) from None
        return self._items[count - 1]

    @property
    def last(self) -> T:
        if not self._items:
            raise IndexError(f"no {self._what} arrived")
        return self._items[-1]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._items[index]

    def __repr__(self) -> str:
        return f"RequestLog({self._what}, {len(self._items)} requests)"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request refused with a 4xx before any policy saw it (the real API would refuse it)."""

    endpoint: Endpoint | str
    status: int
    message: str
    param: str | None


@dataclass(frozen=True, slots=True)
class PolicyFailure:
    """A policy raised, ran out, or answered something the real API could not send."""

    endpoint: Endpoint
    request: str
    error: str
