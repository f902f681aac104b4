"""A test that needs a tool the machine lacks skips with the reason, and fails under CI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_missing_tool_skips_outside_ci_and_fails_under_ci(tmp_path: Path) -> None:
    test_file = tmp_path / "test_needs_tool.py"
    test_file.write_text(
        textwrap.dedent(
            """
            from switchboard.testing.tools import require

            def test_renders():
                require("no-such-tool-sb", "it renders the manifests")
            """
        )
    )
    results = {}
    for ci in ("true", ""):
        results[ci] = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test_file)],
            env={**os.environ, "CI": ci},
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
    assert results["true"].returncode == 1, results["true"].stdout
    assert "no-such-tool-sb is not on PATH" in results["true"].stdout
    assert "CI=true, so this is a failure" in results["true"].stdout
    assert results[""].returncode == 0, results[""].stdout
    assert "1 skipped" in results[""].stdout
    assert "no-such-tool-sb is not on PATH; it renders the manifests" in results[""].stdout
