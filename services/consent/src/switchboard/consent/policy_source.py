"""The policy in force, reloaded when its file changes or on demand (SIGHUP).

A file that fails to load is refused: the previous policy stays in force and the error is
kept for operators, so a bad edit never leaves calls without a policy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from switchboard.consent.policy import Policy, PolicyError, load_policy

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None


def _stamp(path: Path | None) -> Stamp:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class PolicySource:
    """Holds the current policy; ``check`` reloads it when the file changed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp = _stamp(path)
        self.current: Policy = load_policy(path)
        self.last_error: str | None = None

    def check(self) -> bool:
        """Reload if the file's stamp changed; True when a new policy is now in force."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return self.reload() is None

    def reload(self) -> str | None:
        """Load the file again; returns the error (and keeps the old policy) if it is bad."""
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.last_error = str(exc)
            log.warning(
                "Refused the new consent policy; the previous one stays in force.",
                extra={"error": self.last_error},
            )
            return self.last_error
        self.current = policy
        self.last_error = None
        log.info("Loaded a new consent policy.", extra={"policy_source": policy.source})
        return None
