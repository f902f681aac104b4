"""``python -m switchboard.consent [serve | verify --db ... | export --db ... --caller ...]``."""

from __future__ import annotations

import sys

from switchboard.consent.cli import main

if __name__ == "__main__":
    sys.exit(main())
