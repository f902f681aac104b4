"""``python -m switchboard.ops permissions ... | schemas DIR``."""

from __future__ import annotations

from switchboard.ops.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
