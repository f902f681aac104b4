"""Holds the current rules and swaps in a new file only when it validates.

A bad edit must not take routing down: the router keeps deciding with the rules it has
and logs why the new file was refused. Reloads happen on SIGHUP and, for config maps
that change under a running pod, when the file's stat signature changes (the runtime's
``WatchedFile`` does the watching). The shipped default is never reloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from switchboard.escalation.queues import QueueState
from switchboard.escalation.rules_file import Rules, RulesError, load_rules
from switchboard.runtime.watch import WatchedFile, WatchLog

log = logging.getLogger(__name__)

LOG = WatchLog(
    loaded="Rules reloaded.",
    refused="Refused to reload the rules file; keeping the previous rules.",
    refused_level=logging.ERROR,
)


def _same_version(current: Rules, new: Rules) -> bool:
    return current.version == new.version


def _describe(rules: Rules) -> dict[str, object]:
    return {"version": rules.version}


class RulesHolder(WatchedFile[Rules]):
    """The rules in force; call it to get them."""

    def __init__(self, rules: Rules, path: str = "") -> None:
        super().__init__(
            Path(path) if path else None,
            load_rules,
            LOG,
            initial=rules,
            refused=(RulesError,),
            unchanged=_same_version,
            describe=_describe,
            logger=log,
        )

    def __call__(self) -> Rules:
        return self.value

    def static_states(self) -> Mapping[str, QueueState]:
        return self.value.static_states
