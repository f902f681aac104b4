"""The relay against a real nats-server and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict

import msgspec
from conftest import Config, StartRelay, step
from nats.aio.client import Client as NATS
from relay_testkit import Receiver, down, failing_first, ok

from switchboard.contracts.crm import Authority, CreditGranted, OrderPlaced
from switchboard.contracts.subjects import WEBHOOK_DEAD_LETTERS
from switchboard.contracts.webhook import DeadLetters, DeadReason, ListDeadLetters
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher, request
from switchboard.testing import eventually


async def _publish(publisher: EventPublisher, calls: int, per_call: int) -> dict[str, list[str]]:
    """Events interleaved across calls; returns each call's event ids in publish order."""
    ids: dict[str, list[str]] = defaultdict(list)
    for n in range(per_call):
        for c in range(calls):
            call_id = f"call-{c}"
            ids[call_id].append(await publisher.publish(step(call_id, n)))
    return ids


def _first_receipts(receiver: Receiver) -> dict[str, list[str]]:
    """Each call's event ids in the order the receiver first accepted them."""
    seen: set[str] = set()
    order: dict[str, list[str]] = defaultdict(list)
    for r in receiver.delivered():
        if r.webhook_id not in seen:
            seen.add(r.webhook_id)
            order[r.event["subject"]].append(r.webhook_id)
    return order


async def test_events_arrive_signed_as_structured_cloudevents(
    receiver: Receiver, config: Config, start_relay: StartRelay, publisher: EventPublisher
) -> None:
    await start_relay(config.write())
    ids = await _publish(publisher, calls=2, per_call=3)
    await eventually(lambda: len(receiver.delivered()) == 6)
    receiver.verify_all(config.secret)  # the standardwebhooks package's own verify
    first = receiver.requests[0]
    assert first.headers["content-type"].startswith("application/cloudevents+json")
    assert first.event["specversion"] == "1.0"
    assert first.event["type"] == "io.switchboard.agent.handed_off.v1"
    assert first.webhook_id == first.event["id"]
    assert _first_receipts(receiver) == ids


async def test_a_receiver_failing_three_times_gets_each_event_once_in_order(
    receiver: Receiver, config: Config, start_relay: StartRelay, publisher: EventPublisher
) -> None:
    receiver.answer = failing_first(3)
    await start_relay(config.write())
    ids = await _publish(publisher, calls=3, per_call=4)
    every = {i for call in ids.values() for i in call}
    await eventually(lambda: receiver.delivered_ids() == every, timeout=20)
    for event_id in every:
        attempts = receiver.attempts(event_id)
        assert [a.status for a in attempts] == [503, 503, 503, 204]
    assert len(receiver.delivered()) == len(every)  # each exactly once
    assert _first_receipts(receiver) == ids
    receiver.verify_all(config.secret)


async def test_only_the_chosen_events_go_and_personal_data_is_dropped(
    receiver: Receiver, config: Config, start_relay: StartRelay, publisher: EventPublisher
) -> None:
    await start_relay(config.write(events=["case.*"], drop_personal_data=True))
    await publisher.publish(step("call-1", 0))
    order = await publisher.publish(
        OrderPlaced(
            call_id="call-1",
            request_id="r-1",
            reference="ORD-1",
            product_id="headset",
            agent="sales",
            authority=Authority(rule="orders_by_phone"),
            email="jane@example.com",
            shipping_address="221 Baker Street",
        )
    )
    credit = await publisher.publish(
        CreditGranted(
            call_id="call-1",
            request_id="r-2",
            reference="CR-1",
            amount_minor=3000,
            currency="USD",
            agent="manager",
            authority=Authority(rule="manager_credit_limit", limit_minor=5000, currency="USD"),
        )
    )
    await eventually(lambda: receiver.delivered_ids() == {order, credit})
    placed = receiver.attempts(order)[0].event["data"]
    assert "email" not in placed
    assert "shipping_address" not in placed
    assert placed["reference"] == "ORD-1"
    assert receiver.attempts(credit)[0].event["data"]["amount_minor"] == 3000
    assert [r.event["type"] for r in receiver.requests] == [
        "io.switchboard.case.order_placed.v1",
        "io.switchboard.case.credit_granted.v1",
    ]
    receiver.verify_all(config.secret)


async def _dead_letters(nc: NATS) -> DeadLetters:
    reply: DeadLetters = await request(
        nc, WEBHOOK_DEAD_LETTERS, ListDeadLetters(), DeadLetters, 2.0
    )
    return reply


async def _cli(nats_server: NatsServer, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.webhook_relay",
        *args,
        env={**os.environ, "SB_NATS_URL": nats_server.url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_receiver_down_past_the_give_up_age_leaves_dead_letters_that_replay(
    receiver: Receiver,
    config: Config,
    start_relay: StartRelay,
    publisher: EventPublisher,
    nc: NATS,
    nats_server: NatsServer,
) -> None:
    receiver.answer = down
    await start_relay(config.write(give_up_after_s=0.5))
    first = await publisher.publish(step("call-1", 0))
    other = await publisher.publish(step("call-2", 0))
    listed = await eventually(lambda: _dead(nc, 2), timeout=15)
    assert {d.event_id for d in listed.dead_letters} == {first, other}
    assert {d.reason for d in listed.dead_letters} == {DeadReason.GAVE_UP}
    assert all(d.attempts > 1 and d.last_status == 503 for d in listed.dead_letters)
    # The receiver is back, but call-1 has a dead letter: its next event waits behind it
    # rather than overtake it.
    receiver.answer = ok
    behind = await publisher.publish(step("call-1", 1))
    listed = await eventually(lambda: _dead(nc, 3), timeout=15)
    assert [d.reason for d in listed.dead_letters if d.event_id == behind] == [
        DeadReason.BEHIND_DEAD_LETTER
    ]
    code, out = await _cli(nats_server, "dead-letters")
    assert code == 0
    assert "3 shown of 3 dead letter(s)." in out
    assert first in out
    assert "gave_up" in out
    delivered_before = len(receiver.delivered())
    code, out = await _cli(nats_server, "replay", "--endpoint", "crm")
    assert code == 0, out
    assert "Delivered 3; 0 left." in out
    replayed = receiver.delivered()[delivered_before:]
    assert {r.webhook_id for r in replayed} == {first, other, behind}
    call_1 = [r.webhook_id for r in replayed if r.event["subject"] == "call-1"]
    assert call_1 == [first, behind]  # in the call's order
    receiver.verify_all(config.secret)
    assert (await _dead_letters(nc)).total == 0
    after = await publisher.publish(step("call-1", 2))  # the call is no longer parked
    await eventually(lambda: after in receiver.delivered_ids())


async def _dead(nc: NATS, count: int) -> DeadLetters:
    listed = await _dead_letters(nc)
    assert listed.total == count  # eventually() tries again until it holds
    return listed


async def test_a_refusing_receiver_is_not_retried_and_a_failed_replay_keeps_the_letter(
    receiver: Receiver, config: Config, start_relay: StartRelay, publisher: EventPublisher, nc: NATS
) -> None:
    receiver.answer = lambda _r, _h: (410, {})
    await start_relay(config.write())
    gone = await publisher.publish(step("call-1", 0))
    listed = await eventually(lambda: _dead(nc, 1))
    [letter] = listed.dead_letters
    assert (letter.event_id, letter.reason, letter.attempts, letter.last_status) == (
        gone,
        DeadReason.REFUSED,
        1,
        410,
    )
    assert len(receiver.attempts(gone)) == 1
    from switchboard.contracts.subjects import WEBHOOK_REPLAY
    from switchboard.contracts.webhook import DeadLettersReplayed, ReplayDeadLetters

    result = await request(nc, WEBHOOK_REPLAY, ReplayDeadLetters(), DeadLettersReplayed, 10)
    assert result.delivered == 0
    assert result.left == 1
    assert [f.event_id for f in result.failed] == [gone]
    assert msgspec.json.decode(msgspec.json.encode(result))["failed"][0]["last_status"] == 410


async def test_a_busy_receiver_is_given_the_time_its_retry_after_asks_for(
    receiver: Receiver, config: Config, start_relay: StartRelay, publisher: EventPublisher
) -> None:
    def busy_once(r: Receiver, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        first = not r.attempts(headers["webhook-id"])
        return (429, {"Retry-After": "1"}) if first else (204, {})

    receiver.answer = busy_once
    # Retry-After is honoured up to the longest wait configured (here 2 s).
    await start_relay(config.write(), webhook_retry_max_s=2.0)
    event_id = await publisher.publish(step("call-1", 0))
    await eventually(lambda: event_id in receiver.delivered_ids())
    busy, done = receiver.attempts(event_id)
    assert busy.status == 429
    assert done.at - busy.at >= 0.95  # not the 20 ms backoff it is configured with
