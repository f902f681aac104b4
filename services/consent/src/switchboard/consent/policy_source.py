"""The consent policy in force, reloaded when its file changes or on demand (SIGHUP).

A file that fails to load is refused: the previous policy stays in force and the error is
kept for operators (``last_error``), so a bad edit never leaves calls without a policy.
The watching itself is the runtime's ``WatchedFile``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from switchboard.consent.policy import Policy, PolicyError, load_policy
from switchboard.runtime.watch import WatchedFile, WatchLog

log = logging.getLogger(__name__)

LOG = WatchLog(
    loaded="Loaded a new consent policy.",
    refused="Refused the new consent policy; the previous one stays in force.",
)


def _describe(policy: Policy) -> dict[str, object]:
    return {"policy_source": policy.source}


class PolicySource(WatchedFile[Policy]):
    """Holds the current policy; a bad file at start raises ``PolicyError``."""

    def __init__(self, path: Path | None) -> None:
        super().__init__(
            path, load_policy, LOG, refused=(PolicyError,), describe=_describe, logger=log
        )

    @property
    def current(self) -> Policy:
        """The policy handlers decide with."""
        return self.value
