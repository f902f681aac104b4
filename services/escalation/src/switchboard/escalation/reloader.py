"""Holds the current rules and swaps in a new file only when it validates.

A bad edit must not take routing down: the router keeps deciding with the rules it has
and logs why the new file was refused. Reloads happen on SIGHUP and, for config maps
that change under a running pod, when the file's stat signature changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from switchboard.escalation.config import Rules, RulesError, load_rules
from switchboard.escalation.queues import QueueState

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None


def _signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class RulesHolder:
    """The rules in force; call it to get them."""

    def __init__(self, rules: Rules, path: str = "") -> None:
        self._rules = rules
        self._path = path
        self._seen: Signature = _signature(path) if path else None

    def __call__(self) -> Rules:
        return self._rules

    def static_states(self) -> Mapping[str, QueueState]:
        return self._rules.static_states

    def reload(self) -> bool:
        """Load the file again; keep the current rules if it is invalid. True if swapped."""
        if not self._path:
            return False
        self._seen = _signature(self._path)
        try:
            rules = load_rules(self._path)
        except RulesError as exc:
            log.error(
                "Refused to reload the rules file; keeping the previous rules.",
                extra={"error": str(exc), "version": self._rules.version},
            )
            return False
        if rules.version == self._rules.version:
            return False
        log.info(
            "Rules reloaded.", extra={"version": rules.version, "previous": self._rules.version}
        )
        self._rules = rules
        return True

    async def watch(self, interval: float) -> None:
        """Reload whenever the file changes; runs until cancelled."""
        if not self._path or interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            if _signature(self._path) != self._seen:
                self.reload()
