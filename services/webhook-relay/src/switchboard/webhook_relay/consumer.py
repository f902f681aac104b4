"""An endpoint's durable consumer on ``SB_EVENTS``, bound so that redeliveries keep order.

JetStream redelivers an unacknowledged event only once its ack wait has passed, and
serves new events meanwhile; after a crash that would hand a call's later event to the
receiver before an earlier one that was never delivered. So on start, a consumer left with
events pending is recreated to start at its ack floor: everything after the last event
acknowledged in order comes again, in stream order (an event acknowledged out of order
before the crash is delivered twice, under the same ``webhook-id``).
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from switchboard.contracts import streams
from switchboard.webhook_relay.endpoints import Endpoint

log = logging.getLogger(__name__)

EVENTS = streams.EVENTS.name


def _config(
    endpoint: Endpoint, start_seq: int, ack_wait_s: float, max_pending: int
) -> ConsumerConfig:
    subjects = list(endpoint.subjects)
    return ConsumerConfig(
        durable_name=streams.webhook_consumer(endpoint.name),
        description=f"Webhook relay: events for endpoint {endpoint.name}.",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_ack_pending=max_pending,
        max_deliver=-1,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(start_seq, 1),
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=subjects if len(subjects) > 1 else None,
    )


def _subjects(info: ConsumerInfo) -> list[str]:
    config = info.config
    return list(
        config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    )


async def bind(
    js: JetStreamContext, endpoint: Endpoint, *, ack_wait_s: float, max_pending: int
) -> JetStreamContext.PullSubscription:
    """Create the consumer, or resume it at its ack floor; then pull from it."""
    name = streams.webhook_consumer(endpoint.name)
    try:
        info: ConsumerInfo | None = await js.consumer_info(EVENTS, name)
    except NotFoundError:
        info = None
    if info is None:
        stream = await js.stream_info(EVENTS)
        last = stream.state.last_seq or 0
        start = 1 if endpoint.start == "all" else last + 1
        await js.add_consumer(EVENTS, _config(endpoint, start, ack_wait_s, max_pending))
        log.info(
            "Created the endpoint's consumer.",
            extra={"endpoint": endpoint.name, "start_seq": start},
        )
    elif (info.num_ack_pending or 0) > 0 or _subjects(info) != list(endpoint.subjects):
        floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
        start = max(info.config.opt_start_seq or 1, floor + 1)
        await js.delete_consumer(EVENTS, name)
        await js.add_consumer(EVENTS, _config(endpoint, start, ack_wait_s, max_pending))
        log.info(
            "Resumed the endpoint's consumer at its ack floor.",
            extra={"endpoint": endpoint.name, "start_seq": start, "pending": info.num_ack_pending},
        )
    return await js.pull_subscribe_bind(durable=name, stream=EVENTS)
