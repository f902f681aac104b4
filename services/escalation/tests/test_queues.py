"""Queue state sources without a broker: static state, and the cached key-value source."""

from __future__ import annotations

import asyncio

import msgspec

from switchboard.escalation.queues import (
    KvQueueState,
    QueueFeedError,
    QueueState,
    StaticQueueState,
)

STATIC = {"billing": QueueState(waiting=0, agents_available=2), "sales": QueueState()}


class FakeBucket:
    """Stands in for the KV bucket: values by key, a read counter, and a switch to fail."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.reads = 0
        self.failing = False

    async def read(self, key: str) -> bytes | None:
        self.reads += 1
        await asyncio.sleep(0)
        if self.failing:
            raise QueueFeedError("down")
        return self.values.get(key)

    def put(self, key: str, **state: int) -> None:
        self.values[key] = msgspec.json.encode(state)


async def test_static_state_follows_the_rules_it_is_given() -> None:
    current = {"billing": QueueState(waiting=1, agents_available=1)}
    source = StaticQueueState(lambda: current)
    assert await source.snapshot() == current
    current = STATIC
    assert await source.snapshot() == STATIC


async def test_reported_queues_use_the_feed_and_unreported_ones_the_static_state() -> None:
    bucket = FakeBucket()
    bucket.put("billing", waiting=7, agents_available=3)
    snapshot = await KvQueueState(bucket.read, lambda: STATIC).snapshot()
    assert snapshot["billing"] == QueueState(waiting=7, agents_available=3)
    assert snapshot["sales"] == STATIC["sales"]


async def test_a_snapshot_is_reused_within_its_time_to_live() -> None:
    bucket = FakeBucket()
    source = KvQueueState(bucket.read, lambda: STATIC, ttl=60)
    await source.snapshot()
    bucket.put("billing", waiting=9, agents_available=1)
    assert (await source.snapshot())["billing"] == STATIC["billing"]
    assert bucket.reads == len(STATIC)


async def test_an_expired_snapshot_is_read_again() -> None:
    bucket = FakeBucket()
    source = KvQueueState(bucket.read, lambda: STATIC, ttl=0)
    await source.snapshot()
    bucket.put("billing", waiting=9, agents_available=1)
    assert (await source.snapshot())["billing"].waiting == 9


async def test_concurrent_decisions_share_one_read() -> None:
    bucket = FakeBucket()
    source = KvQueueState(bucket.read, lambda: STATIC, ttl=60)
    await asyncio.gather(*(source.snapshot() for _ in range(50)))
    assert bucket.reads == len(STATIC)


async def test_a_malformed_entry_falls_back_to_the_static_state() -> None:
    bucket = FakeBucket()
    bucket.values["billing"] = b'{"waiting": -4}'
    bucket.values["sales"] = b"not json"
    snapshot = await KvQueueState(bucket.read, lambda: STATIC).snapshot()
    assert snapshot == STATIC


async def test_when_the_feed_is_down_the_last_known_state_is_kept() -> None:
    bucket = FakeBucket()
    bucket.put("billing", waiting=4, agents_available=2)
    source = KvQueueState(bucket.read, lambda: STATIC, ttl=0)
    await source.snapshot()
    bucket.failing = True
    assert (await source.snapshot())["billing"].waiting == 4


async def test_when_the_feed_was_never_read_the_static_state_is_used() -> None:
    bucket = FakeBucket()
    bucket.failing = True
    assert await KvQueueState(bucket.read, lambda: STATIC).snapshot() == STATIC


async def test_a_feed_that_hangs_is_abandoned_after_the_timeout() -> None:
    async def hang(_key: str) -> bytes | None:
        await asyncio.Event().wait()  # never set: the feed never answers
        return None

    source = KvQueueState(hang, lambda: STATIC, timeout=0.05)
    assert await asyncio.wait_for(source.snapshot(), 1) == STATIC
