"""``python -m switchboard.webhook_relay [run | dead-letters | replay]``."""

from __future__ import annotations

from switchboard.webhook_relay.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
