"""Settings of the webhook relay, read from ``SB_*`` environment variables.

The endpoints themselves (URL, secret file, event filter, personal data, give-up age) are
in the endpoints file, because there are several and each has a secret.
"""

from __future__ import annotations

from switchboard.runtime.settings import ServiceSettings


class RelaySettings(ServiceSettings, kw_only=True, frozen=True):
    """How the relay delivers, retries and gives up."""

    webhook_endpoints_file: str = ""
    """The endpoints (TOML); the relay refuses to start without one."""
    webhook_timeout_s: float = 10.0
    """One POST's budget, connection included; a timeout is retried."""
    webhook_give_up_s: float = 86400.0
    """An event older than this (since it was stored) that still fails becomes a dead
    letter; an endpoint may set its own ``give_up_after_s``."""
    webhook_retry_initial_s: float = 1.0
    """The first retry's delay; each next one doubles, with jitter."""
    webhook_retry_max_s: float = 300.0
    """The longest wait between two attempts (a ``Retry-After`` may ask for up to this)."""
    webhook_concurrency: int = 16
    """POSTs in flight per endpoint, across calls (one call's events go one at a time)."""
    webhook_max_in_flight: int = 1000
    """Events held per endpoint, delivered or waiting (the consumer's ``max_ack_pending``)."""
    webhook_ack_wait_s: float = 30.0
    """The consumer's ack wait; held events are marked in progress well within it."""
    webhook_replay_attempts: int = 3
    """Attempts per dead letter when an operator replays it."""
