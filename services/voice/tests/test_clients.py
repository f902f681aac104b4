"""Clients against a real nats-server: answers, no responders, slow responders."""

from __future__ import annotations

import asyncio
import signal
import time

import msgspec
from nats.aio.client import Client as NATS
from nats.micro import add_service

from switchboard.contracts import streams
from switchboard.contracts.base import new_id, utcnow
from switchboard.contracts.consent import (
    ConsentDecision,
    ConsentMode,
    ConsentPolicyQuery,
    ConsentRecorded,
    RecordConsent,
)
from switchboard.contracts.escalation import (
    EscalationReason,
    EscalationRequest,
    EscalationTrigger,
    HandoffDecision,
    HandoffTarget,
)
from switchboard.contracts.subjects import ESCALATION_DECIDE, REQUESTS
from switchboard.contracts.transfer import (
    FailureReason,
    HumanDecision,
    LegState,
    PlaceTransfer,
    ReportHumanDecision,
    TransferAccepted,
    TransferAnswered,
    TransferConnected,
    TransferDialing,
    TransferRejected,
)
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher
from switchboard.runtime.service import add_typed_endpoint
from switchboard.testing import eventually
from switchboard.testing.fake_backends import DESTINATIONS, FakeBridge, FakeLedger, FakeRouter
from switchboard.voice.clients.consent import FALLBACK_NOTICE_VERSION, ConsentClient
from switchboard.voice.clients.router import RouterClient, queue_from_settings
from switchboard.voice.clients.transfer import TransferClient
from switchboard.voice.wiring import Bus

SPEC = {r.subject: r for r in REQUESTS}


def _request(call_id: str = "c-1", **kw: object) -> EscalationRequest:
    return EscalationRequest(
        call_id=call_id,
        reason=EscalationReason.CALLER_REQUEST,
        trigger=EscalationTrigger.PHRASE,
        current_agent="billing",
        **kw,  # type: ignore[arg-type]
    )


async def _stored(bus: Bus, stream: str) -> int:
    info = await bus.js.stream_info(stream)
    return int(info.state.messages)


def _command(call_id: str = "c-1") -> RecordConsent:
    return RecordConsent(
        call_id=call_id,
        decision=ConsentDecision.GRANTED,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_version="v1",
        command_id=new_id(),
        decided_at=utcnow(),
    )


async def test_the_policy_comes_from_the_ledger_when_it_answers(nc: NATS, bus: Bus) -> None:
    await FakeLedger(nc, mode=ConsentMode.NOTIFY).start()
    client = ConsentClient(bus.nc, bus.js, policy_timeout=0.5)
    policy = await client.policy(ConsentPolicyQuery(call_id="c-1"))
    assert policy.mode is ConsentMode.NOTIFY
    assert policy.fallback is False


async def test_no_ledger_means_the_strictest_policy_at_once(bus: Bus) -> None:
    client = ConsentClient(bus.nc, bus.js, policy_timeout=2.0)
    started = time.monotonic()
    policy = await client.policy(ConsentPolicyQuery(call_id="c-1", language="en"))
    assert time.monotonic() - started < 1.0  # no responders: no need to wait the timeout
    assert policy.mode is ConsentMode.ASK
    assert policy.fallback is True
    assert policy.notice_version == FALLBACK_NOTICE_VERSION


async def test_a_slow_ledger_means_the_strictest_policy_after_the_timeout(
    nc: NATS, bus: Bus
) -> None:
    await FakeLedger(nc, mode=ConsentMode.NOTIFY, policy_delay_s=1.0).start()
    client = ConsentClient(bus.nc, bus.js, policy_timeout=0.2)
    started = time.monotonic()
    policy = await client.policy(ConsentPolicyQuery(call_id="c-1"))
    assert 0.15 < time.monotonic() - started < 0.9
    assert policy.mode is ConsentMode.ASK
    assert policy.fallback is True


async def test_a_decision_returns_the_ledger_receipt_for_that_command(nc: NATS, bus: Bus) -> None:
    ledger = await FakeLedger(nc).start()
    client = ConsentClient(bus.nc, bus.js, receipt_timeout=2.0)
    command = _command()
    receipt = await client.record(command)
    assert isinstance(receipt, ConsentRecorded)
    assert receipt.command_id == command.command_id
    assert receipt.receipt.sequence == 1
    assert [c.command_id for c in ledger.commands] == [command.command_id]


async def test_the_command_carries_its_id_as_the_dedup_header(nc: NATS, bus: Bus) -> None:
    ledger = await FakeLedger(nc).start()
    client = ConsentClient(bus.nc, bus.js, receipt_timeout=1.0)
    command = _command()
    await client.record(command)
    # Publishing the same command again inside the duplicate window stores nothing.
    ack = await bus.js.publish(
        "sb.cmd.consent.record.c-1",
        msgspec.json.encode(command),
        headers={"Nats-Msg-Id": command.command_id},
    )
    assert ack.duplicate is True
    # A later command through the same stream reaches the ledger after the duplicate would
    # have: once it is there, the duplicate would be too.
    later = _command()
    await client.record(later)
    await eventually(lambda: len(ledger.commands) >= 2)
    assert [c.command_id for c in ledger.commands] == [command.command_id, later.command_id]


async def test_no_receipt_in_time_returns_none(nc: NATS, bus: Bus) -> None:
    await FakeLedger(nc, receipts=False).start()
    client = ConsentClient(bus.nc, bus.js, receipt_timeout=0.3)
    assert await client.record(_command()) is None


async def test_with_nats_stalled_no_receipt_comes_within_the_receipt_timeout(
    nats_server: NatsServer, bus: Bus
) -> None:
    """The caller waits for a receipt at most the receipt timeout, whatever the bus does. A
    server that stopped answering (stalled, or gone before the client noticed) left the
    flush before the publish waiting for its PONG, nats-py's 10 s: the caller sat in
    silence after their answer while NATS restarted."""
    client = ConsentClient(bus.nc, bus.js, receipt_timeout=0.5)
    assert nats_server.process is not None
    nats_server.process.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        assert await client.record(_command()) is None
        elapsed = time.monotonic() - started
    finally:
        nats_server.process.send_signal(signal.SIGCONT)
    assert elapsed < 1.5, elapsed


async def test_a_receipt_for_another_command_is_not_taken(nc: NATS, bus: Bus) -> None:
    """Only the receipt whose command id matches counts, even on the same call."""
    publisher = EventPublisher(bus.js)
    client = ConsentClient(bus.nc, bus.js, receipt_timeout=0.5)

    async def someone_elses_receipt() -> None:
        # The client subscribes before it publishes: once its command is stored, it listens.
        await eventually(lambda: _stored(bus, streams.CONSENT_COMMANDS.name))
        ledger = FakeLedger(nc)
        other = _command()
        ledger.commands.append(other)
        await publisher.publish(ledger._apply(other))

    task = asyncio.create_task(someone_elses_receipt())
    assert await client.record(_command()) is None
    await task


async def test_the_router_decides_when_it_answers(nc: NATS, bus: Bus) -> None:
    await FakeRouter(nc).start()
    client = RouterClient(bus.nc, timeout=0.5, fallback_queue=None)
    decision = await client.decide(_request())
    assert decision.target is HandoffTarget.AI_MANAGER
    assert decision.fallback is False


async def test_no_router_and_no_queue_means_a_callback(bus: Bus) -> None:
    client = RouterClient(bus.nc, timeout=0.5, fallback_queue=None)
    decision = await client.decide(_request())
    assert decision.target is HandoffTarget.CALLBACK
    assert decision.fallback is True
    assert decision.rules_fired[0].rule_id == "voice.fallback.callback"


async def test_a_slow_router_means_the_configured_human_queue(nc: NATS, bus: Bus) -> None:
    await FakeRouter(nc, delay_s=1.0).start()
    queue = queue_from_settings("fallback", "+14155550199", "")
    client = RouterClient(bus.nc, timeout=0.2, fallback_queue=queue)
    decision = await client.decide(_request())
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.fallback is True
    assert [d.address for d in decision.destinations] == ["+14155550199"]


async def test_a_human_queue_without_destinations_is_replaced_by_the_fallback(
    nc: NATS, bus: Bus
) -> None:
    async def empty_queue(req: EscalationRequest) -> HandoffDecision:
        return HandoffDecision(
            call_id=req.call_id,
            request_id=req.request_id,
            target=HandoffTarget.HUMAN_QUEUE,
            say="Hold on.",
        )

    svc = await add_service(nc, name="escalation", version="0.0.1")
    await add_typed_endpoint(svc, SPEC[ESCALATION_DECIDE], empty_queue)
    decision = await RouterClient(bus.nc, timeout=0.5, fallback_queue=None).decide(_request())
    assert decision.target is HandoffTarget.CALLBACK
    assert decision.fallback is True


def test_an_invalid_fallback_queue_is_ignored() -> None:
    assert queue_from_settings("q", "call me maybe", "") is None
    assert queue_from_settings("", "+14155550199", "") is None


async def test_no_bridge_means_a_typed_rejection(bus: Bus) -> None:
    client = TransferClient(bus.nc, timeout=0.3)
    reply = await client.place(
        PlaceTransfer(call_id="c-1", room="r", caller_identity="p", destinations=DESTINATIONS)
    )
    assert isinstance(reply, TransferRejected)
    assert reply.reason is FailureReason.CARRIER_ERROR


async def test_a_watch_sees_only_its_own_transfer_in_order(nc: NATS, bus: Bus) -> None:
    bridge = await FakeBridge(nc).start()
    client = TransferClient(bus.nc, timeout=0.5)
    command = PlaceTransfer(
        call_id="c-1", room="r", caller_identity="p", destinations=DESTINATIONS[:1]
    )
    publisher = EventPublisher(bus.js)
    async with client.watch("c-1", command.transfer_id) as watch:
        await publisher.publish(
            TransferDialing(call_id="c-1", transfer_id="another", destination_id="x", attempt=1)
        )
        reply = await client.place(command)
        assert isinstance(reply, TransferAccepted)
        states = [type(await watch.next(2.0)).__name__ for _ in range(3)]
        early = ReportHumanDecision(
            call_id="c-1", transfer_id=command.transfer_id, attempt=2, decision=HumanDecision.ACCEPT
        )
        assert not await client.decide(early)  # No human of attempt 2 is being briefed.
        accept = msgspec.structs.replace(early, attempt=1)
        assert await client.decide(accept)
        states += [type(await watch.next(2.0)).__name__ for _ in range(2)]
    assert states == [
        "TransferDialing",
        "TransferRinging",
        "TransferAnswered",
        "TransferBriefed",
        "TransferConnected",
    ]
    assert bridge.decisions == [accept]
    legs = await client.legs("c-1")
    assert legs is not None
    assert [(leg.attempt, leg.state) for leg in legs.legs] == [(1, LegState.ENDED)]


async def test_a_watch_begins_at_once_while_nats_stalls(nats_server: NatsServer, bus: Bus) -> None:
    """Watching a transfer does not wait on the server: with nats-server restarting as a
    transfer began, a flush held the caller in silence for nats-py's 10 s (found by the
    chaos run). The subscription is sent ahead of the place request on the same
    connection, so the server has it before any event of that transfer."""
    client = TransferClient(bus.nc, timeout=0.5)
    assert nats_server.process is not None
    nats_server.process.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        async with client.watch("c-1", "t-1"):
            elapsed = time.monotonic() - started
    finally:
        nats_server.process.send_signal(signal.SIGCONT)
    assert elapsed < 1.0, elapsed


async def test_without_a_bridge_legs_are_unknown_and_a_decision_is_not_taken(bus: Bus) -> None:
    client = TransferClient(bus.nc, timeout=0.3)
    assert await client.legs("c-1") is None
    report = ReportHumanDecision(
        call_id="c-1", transfer_id="t", attempt=1, decision=HumanDecision.DECLINE
    )
    assert not await client.decide(report)


async def test_scripting_the_carrier_without_a_bridge_returns_none(bus: Bus) -> None:
    from switchboard.contracts.simulation import ScriptCarrier, SimOutcome

    client = TransferClient(bus.nc, timeout=0.3)
    assert await client.script(ScriptCarrier(call_id="c-1", outcomes=[SimOutcome.BUSY])) is None


async def test_a_status_event_delivered_twice_is_applied_once(nc: NATS, bus: Bus) -> None:
    """Finding 13: a NATS restart delivered ``transfer.answered`` twice to core
    subscribers. The watch applies an event once per CloudEvents (source, id) pair: the
    same event re-published by another bridge instance is the same pair (the source names
    the service, not the instance); the same id from another source is another event."""
    client = TransferClient(bus.nc, timeout=0.5)
    bridge = EventPublisher(bus.js)
    other = EventPublisher(bus.js)
    answered, _ = bridge.encode(
        TransferAnswered(call_id="c-1", transfer_id="t-1", destination_id="d-1", attempt=1)
    )
    same_from_another_instance, _ = other.encode(
        TransferAnswered(call_id="c-1", transfer_id="t-1", destination_id="d-1", attempt=1),
        event_id=answered.event_id,
    )
    same_id, _ = other.encode(
        TransferAnswered(call_id="c-1", transfer_id="t-1", destination_id="d-2", attempt=2),
        event_id=answered.event_id,
    )
    source = b'"urn:switchboard:sip-bridge"'
    same_id_elsewhere = same_id.body.replace(source, b'"urn:switchboard:elsewhere"')
    assert same_id_elsewhere != same_id.body
    connected, _ = bridge.encode(
        TransferConnected(call_id="c-1", transfer_id="t-1", destination_id="d-1")
    )
    async with client.watch("c-1", "t-1") as watch:
        # The watch does not flush (in production the events answer a place request sent
        # after it on the same connection); these come from another connection, so the
        # subscription must be known to the server before they are published. nats-py
        # writes a flush's PING ahead of commands still pending: the second PONG proves it.
        await bus.nc.flush()
        await bus.nc.flush()
        for body in (answered.body, answered.body, same_from_another_instance.body):
            await nc.publish(answered.subject, body)
        await nc.publish(answered.subject, same_id_elsewhere)
        await nc.publish(connected.subject, connected.body)
        seen = [await watch.next(2.0) for _ in range(3)]
    assert [(type(e).__name__, getattr(e, "attempt", None)) for e in seen] == [
        ("TransferAnswered", 1),
        ("TransferAnswered", 2),
        ("TransferConnected", None),
    ]
    # Bounded and per call: the call's end forgets them.
    assert client.seen_events == 3
    client.forget_events()
    assert client.seen_events == 0
