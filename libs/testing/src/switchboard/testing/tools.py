"""External tools a test needs (kubectl, podman): skip without them, except under CI.

A developer machine may lack them and ``make test`` still passes, saying why each test was
skipped; under ``CI=true`` a missing tool fails the run, as a missing database does, so CI
never reports green for tests it did not run.
"""

from __future__ import annotations

import shutil

import pytest

from switchboard.testing.plugin import in_ci


def require(tool: str, why: str) -> str:
    """The path of ``tool`` on PATH, else skip (fail under CI) naming it and ``why``."""
    found = shutil.which(tool)
    if found is not None:
        return found
    reason = f"{tool} is not on PATH; {why}."
    if in_ci():
        pytest.fail(f"{reason} CI=true, so this is a failure, not a skip.", pytrace=False)
    pytest.skip(reason)
