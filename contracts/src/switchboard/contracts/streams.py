"""JetStream stream and consumer definitions, as plain data.

``contracts`` depends on msgspec alone, so these are not nats-py configs; the runtime
turns them into ``StreamConfig`` objects and deployments into Helm/NACK resources.
Production overrides ``replicas`` to 3 (and the server runs ``sync_interval: always``).
"""

from __future__ import annotations

import enum

import msgspec

from switchboard.contracts import subjects


class Retention(enum.StrEnum):
    LIMITS = "limits"
    WORK_QUEUE = "workqueue"


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One JetStream stream."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention
    description: str
    duplicate_window_s: float = 120.0
    """Window in which a repeated ``Nats-Msg-Id`` is dropped by the server."""
    max_age_s: float = 0.0
    """0 keeps messages until limits or acks remove them."""
    replicas: int = 1


EVENTS = StreamSpec(
    name="SB_EVENTS",
    subjects=(subjects.EVENTS_WILDCARD,),
    retention=Retention.LIMITS,
    description="Every call event as a CloudEvent; CRMs read it with durable consumers.",
    max_age_s=30 * 24 * 3600.0,
)

CONSENT_COMMANDS = StreamSpec(
    name="SB_CONSENT_CMDS",
    subjects=(subjects.CONSENT_COMMANDS_WILDCARD,),
    retention=Retention.WORK_QUEUE,
    description="Consent decisions waiting to be appended to the ledger.",
)

WEBHOOK_DEAD_LETTERS = StreamSpec(
    name="SB_WEBHOOK_DEAD",
    subjects=(subjects.WEBHOOK_DEAD_WILDCARD,),
    retention=Retention.LIMITS,
    description="Events the webhook relay gave up delivering, until a replay delivers them.",
    max_age_s=30 * 24 * 3600.0,
)

ALL_STREAMS: tuple[StreamSpec, ...] = (EVENTS, CONSENT_COMMANDS, WEBHOOK_DEAD_LETTERS)
"""Every stream. The provisioning step creates them and keeps them to these specs;
services only check that the ones they use exist."""


class BucketSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One JetStream key-value bucket (stored in the stream ``KV_<name>``)."""

    name: str
    description: str
    history: int = 1
    max_age_s: float = 0.0
    replicas: int = 1

    @property
    def stream(self) -> str:
        return f"KV_{self.name}"


TRANSFER_STATE = BucketSpec(
    name="sb_transfers",
    description="The SIP bridge's transfers in progress, so another instance can end a "
    "crashed one's cleanly.",
    max_age_s=24 * 3600.0,
)

ALL_BUCKETS: tuple[BucketSpec, ...] = (TRANSFER_STATE,)
"""Every key-value bucket the provisioning step creates."""

CONSENT_LEDGER_CONSUMER = "consent-ledger"
"""Durable pull consumer on ``CONSENT_COMMANDS`` owned by the consent ledger."""

WEBHOOK_CONSUMER_PREFIX = "webhook-"
"""The relay's durable consumer for endpoint ``E`` on ``EVENTS`` is ``webhook-E``."""


def webhook_consumer(endpoint: str) -> str:
    """The durable consumer the webhook relay reads ``EVENTS`` with for one endpoint."""
    return f"{WEBHOOK_CONSUMER_PREFIX}{endpoint}"
