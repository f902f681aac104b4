"""A value loaded from a file, reloaded when the file changes and on demand (SIGHUP).

Services read configuration files that operators edit under a running process (config
maps, policy files). A change is noticed by polling the file's stat signature (mtime,
size, inode: a config map swaps the file, so its inode changes even when mtime does not)
and by SIGHUP, which reloads whatever the signature says. A file that fails to load is
refused: the previous value stays in force and the error is logged and kept, so a bad
edit never leaves the service without its configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

Signature = tuple[int, int, int] | None
"""(mtime in ns, size, inode) of a file; ``None`` when it cannot be read."""


def signature(path: Path | None) -> Signature:
    """The file's stat signature, or ``None`` if there is no file to stat."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True, slots=True)
class WatchLog:
    """What a watcher logs, in the words of the service that owns the file."""

    loaded: str
    """Said when a new value is in force."""
    refused: str
    """Said when the file did not load and the previous value stays."""
    refused_level: int = logging.WARNING


def _nothing(_: object) -> Mapping[str, object]:
    return {}


class WatchedFile(Generic[T]):
    """The value loaded from ``path``, swapped for a new one only when the file loads.

    ``load`` raises one of ``refused`` for a file that cannot be used; ``unchanged`` says
    when a freshly loaded value is the one in force already (no swap, nothing logged);
    ``describe`` gives log fields for a value (versions, sources; never file contents).
    With no ``path`` the value is fixed (a shipped default) and never reloaded.
    """

    def __init__(
        self,
        path: Path | None,
        load: Callable[[Path | None], T],
        log: WatchLog,
        *,
        initial: T | None = None,
        refused: tuple[type[Exception], ...] = (ValueError,),
        unchanged: Callable[[T, T], bool] | None = None,
        describe: Callable[[T], Mapping[str, object]] = _nothing,
        logger: logging.Logger | None = None,
    ) -> None:
        self.path = path
        self._load = load
        self._log = log
        self._refused = refused
        self._unchanged = unchanged
        self._describe = describe
        self._logger = logger or logging.getLogger(__name__)
        # Stamped before the first load, so an edit racing the start is seen next time.
        self._seen = signature(path)
        self._value: T = load(path) if initial is None else initial
        self.last_error: str | None = None
        """Why the last reload was refused; ``None`` once a reload succeeds."""
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def value(self) -> T:
        """The value in force."""
        return self._value

    def changed(self) -> bool:
        """Whether the file's signature moved since it was last loaded."""
        return self.path is not None and signature(self.path) != self._seen

    def check(self) -> bool:
        """Reload if the file changed; True when a new value is now in force."""
        return self.changed() and self.reload()

    def reload(self) -> bool:
        """Load the file now; keep the current value if it does not load. True if swapped."""
        if self.path is None:
            return False
        self._seen = signature(self.path)
        try:
            value = self._load(self.path)
        except self._refused as exc:
            self.last_error = str(exc)
            self._logger.log(
                self._log.refused_level,
                self._log.refused,
                extra={"error": self.last_error, **self._describe(self._value)},
            )
            return False
        self.last_error = None
        if self._unchanged is not None and self._unchanged(self._value, value):
            return False
        previous = {f"previous_{k}": v for k, v in self._describe(self._value).items()}
        self._value = value
        self._logger.info(self._log.loaded, extra={**self._describe(value), **previous})
        return True

    async def poll(self, interval: float) -> None:
        """Check the file every ``interval`` seconds until cancelled (0: never)."""
        if self.path is None or interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            self._guarded(self.check)

    def start(self, interval: float, *, sighup: bool = True) -> None:
        """Poll in the background and, with ``sighup``, reload on SIGHUP; ``stop`` ends both."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self.poll(interval), name=f"watch {self.path}")
        if sighup:
            loop.add_signal_handler(signal.SIGHUP, self._guarded, self.reload)
            self._loop = loop

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGHUP)
            self._loop = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _guarded(self, action: Callable[[], bool]) -> None:
        # A bug in a loader must not end the polling (or surface in asyncio's signal
        # machinery): the service keeps its value and says so.
        try:
            action()
        except Exception:
            self._logger.exception("Reloading a watched file failed; the value in force stays.")
