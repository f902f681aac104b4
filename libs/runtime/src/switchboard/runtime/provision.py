"""The provisioning step: create the JetStream streams (and update them to the contract)
and the key-value buckets.

Services only check that the streams they need exist (``bus.require_stream``): their NATS
users may not create or reconfigure a stream, since one that could would also be able to
shrink it and delete what it holds. This step runs with its own user (``provisioner`` in
the permission table) before the services, from an operator's shell, a Kubernetes Job or
the local launcher::

    SB_NATS_USER=provisioner SB_NATS_PASSWORD=… python -m switchboard.runtime.provision

It reads the shared settings (``SB_NATS_URL``, TLS, ``SB_STREAM_REPLICAS``…), is safe to
run again (an existing stream is brought up to the contract) and exits 0 when every
stream is in place.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError

from switchboard.contracts import streams
from switchboard.runtime.bus import connect, ensure_stream
from switchboard.runtime.logs import configure_logging
from switchboard.runtime.settings import ServiceSettings, SettingsError, load

log = logging.getLogger(__name__)

USER: Final = "provisioner"
"""The NATS user (and inbox prefix) of the provisioning step."""
STREAMS: Final = streams.ALL_STREAMS
EXIT_CONFIG: Final = 2


BUCKETS: Final = streams.ALL_BUCKETS


async def provision(js: JetStreamContext, replicas: int = 1) -> list[str]:
    """Create or update every stream, then create the key-value buckets that are missing;
    returns the names of the streams (a bucket's is ``KV_<bucket>``)."""
    for spec in STREAMS:
        await ensure_stream(js, spec, replicas)
    for bucket in BUCKETS:
        await ensure_bucket(js, bucket, replicas)
    return [spec.name for spec in STREAMS] + [bucket.stream for bucket in BUCKETS]


async def ensure_bucket(js: JetStreamContext, spec: streams.BucketSpec, replicas: int = 1) -> None:
    """Create the bucket when it is missing (an existing one is left as it is)."""
    try:
        await js.key_value(spec.name)
    except BucketNotFoundError:
        await js.create_key_value(
            KeyValueConfig(
                bucket=spec.name,
                description=spec.description,
                history=spec.history,
                ttl=spec.max_age_s or None,
                storage=StorageType.FILE,
                replicas=max(replicas, spec.replicas),
                direct=True,
            )
        )


async def provision_with(settings: ServiceSettings) -> list[str]:
    nc = await connect(settings, USER, max_reconnect_attempts=0)
    try:
        return await provision(nc.jetstream(), settings.stream_replicas)
    finally:
        await nc.close()


def main() -> int:
    configure_logging(USER)
    try:
        settings = load(ServiceSettings)
    except SettingsError as exc:
        log.critical("Refusing to start: the configuration is invalid.", extra={"error": str(exc)})
        return EXIT_CONFIG
    made = asyncio.run(provision_with(settings))
    log.info("Streams provisioned.", extra={"streams": made})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
