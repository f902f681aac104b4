"""The NATS KV bucket where a workforce system publishes queue state, adapted for ``queues``.

The router only reads it. It creates the bucket when missing so the router and the
workforce feed can start in either order; history 1 because only the latest count matters.
"""

from __future__ import annotations

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from switchboard.escalation.queues import KeyReader, QueueFeedError

DEFAULT_BUCKET = "sb_queue_state"


async def open_bucket(js: JetStreamContext, name: str, replicas: int = 1) -> KeyValue:
    """The queue-state bucket, created when it does not exist yet."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=name,
            description="Queue state (callers waiting, agents available) per queue.",
            history=1,
            storage=StorageType.FILE,
            replicas=replicas,
        )
        return await js.create_key_value(config)


def key_reader(kv: KeyValue) -> KeyReader:
    """Read one queue's key; absent keys are ``None``, store failures ``QueueFeedError``."""

    async def read(key: str) -> bytes | None:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        except NatsError as exc:
            raise QueueFeedError(f"Queue state bucket read failed: {type(exc).__name__}.") from exc
        return entry.value

    return read
