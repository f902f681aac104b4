"""The PostgreSQL fallback: a throwaway cluster from local binaries, and never a silent skip."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

from switchboard.testing import postgres


def test_a_throwaway_cluster_starts_answers_and_is_removed() -> None:
    with postgres.throwaway_cluster() as dsn:
        assert dsn is not None, "PostgreSQL binaries are part of this machine's image"
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT current_setting('listen_addresses')").fetchone()
        assert row == ("127.0.0.1",)
    assert not postgres.reachable(dsn)


def test_no_database_fails_the_run_under_ci_instead_of_skipping(tmp_path: Path) -> None:
    test_file = tmp_path / "test_needs_pg.py"
    test_file.write_text(
        textwrap.dedent(
            """
            from switchboard.testing import postgres

            def _none():
                import contextlib
                @contextlib.contextmanager
                def cm():
                    yield None
                return cm()

            postgres.throwaway_cluster = _none

            def test_uses_pg(postgres_server_dsn):
                pass
            """
        )
    )
    env_base = {"SB_TEST_POSTGRES_DSN": "postgresql://nobody@127.0.0.1:1/none"}
    results = {}
    for ci in ("true", ""):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
            env={**os.environ, **env_base, "CI": ci},
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        results[ci] = done
    assert results["true"].returncode == 1, results["true"].stdout
    assert "CI=true, so this is a failure" in results["true"].stdout
    assert results[""].returncode == 0, results[""].stdout
    assert "1 skipped" in results[""].stdout
