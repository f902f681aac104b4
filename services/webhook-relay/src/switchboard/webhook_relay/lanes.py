"""One lane per call: a call's jobs run one at a time in the order they came, while
different calls run side by side. A lane's task ends when its queue is empty."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

J = TypeVar("J")


class Lanes(Generic[J]):
    """Runs ``handle(job)`` for each job, in order per key, concurrently across keys."""

    def __init__(self, handle: Callable[[J], Awaitable[None]]) -> None:
        self._handle = handle
        self._queues: dict[str, deque[J]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._queues)

    def put(self, key: str, job: J) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(job)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key, queue), name=f"lane {key}")

    async def _run(self, key: str, queue: deque[J]) -> None:
        try:
            while queue:
                job = queue[0]
                try:
                    await self._handle(job)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A bug must not wedge the call's lane; the job's event is not acked,
                    # so the server delivers it again later.
                    log.exception("A delivery job failed.", extra={"lane": key})
                queue.popleft()
        finally:
            self._tasks.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    async def close(self) -> None:
        """Stop every lane now; jobs not done are left to the server's redelivery."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._queues.clear()
