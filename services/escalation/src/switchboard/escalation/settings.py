"""Settings of the escalation router, read from ``SB_*`` environment variables."""

from __future__ import annotations

from switchboard.runtime.settings import ServiceSettings


class EscalationSettings(ServiceSettings, kw_only=True, frozen=True):
    """``SB_RULES_FILE``, ``SB_QUEUE_STATE_BUCKET``... on top of the shared settings."""

    rules_file: str = ""
    """Path of the TOML rules file; empty uses the default shipped with the router."""
    rules_reload_s: float = 5.0
    """How often to look for a changed rules file (0: only on SIGHUP)."""
    queue_state_bucket: str = ""
    """NATS KV bucket with live queue state (e.g. ``sb_queue_state``); empty uses the
    static state in the rules file."""
    queue_state_ttl_s: float = 1.0
    """How long a read of the queue-state bucket is reused."""
    event_ack_timeout_s: float = 5.0
    """How long to wait for JetStream to acknowledge a decision event before retrying it
    (in the background: replies never wait for it)."""
