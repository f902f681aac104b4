"""A ledger killed between its commit and its receipt's publication, restarted under
another ``SB_INSTANCE``: the receipt it publishes then is the event the first one would
have published, one CloudEvents identity (``source``, ``id``), with the time of the fact.

Real subprocesses and a real nats-server: the events stream is narrowed so that it takes
no consent event (the ledger commits, and its receipt cannot be stored), the ledger is
killed with ``SIGKILL``, the stream restored and the ledger started again, as another
instance. The whole-system version, with every service killed at random and nats-server
restarted under 200 calls, is ``tests/test_chaos.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy

from switchboard.contracts import streams
from switchboard.contracts.base import new_id, utcnow
from switchboard.contracts.consent import (
    ConsentDecision,
    ConsentMode,
    ConsentRecords,
    ConsentRecordView,
    LookupConsent,
    RecordConsent,
)
from switchboard.contracts.envelope import EVENTS, CloudEvent, decode_envelope
from switchboard.contracts.subjects import (
    CONSENT_LOOKUP,
    EVENTS_PREFIX,
    consent_record_subject,
)
from switchboard.runtime.bus import MSG_ID_HEADER, request, stream_config
from switchboard.testing import eventually
from tests.stack import Stack

RESTART_TIMEOUT_S = 60.0
"""The restarted ledger gets the command again once its ack wait (from the 3 s receipt
timeout) has run out: well inside this."""


def test_a_receipt_republished_by_a_restarted_ledger_is_one_event(stack: Stack) -> None:
    asyncio.run(_kill_between_commit_and_publish(stack))


async def _kill_between_commit_and_publish(stack: Stack) -> None:
    nc = await nats.connect(stack.nats.url)
    js = nc.jetstream()
    ledger = stack.services["consent"]
    full = stream_config(streams.EVENTS)
    try:
        others = sorted({f"{EVENTS_PREFIX}.{s.domain}.>" for s in EVENTS if s.domain != "consent"})
        await js.update_stream(dataclasses.replace(full, subjects=others))
        command = RecordConsent(
            call_id=f"call-{new_id()[:12]}",
            decision=ConsentDecision.GRANTED,
            jurisdiction="US-CA",
            mode=ConsentMode.ASK,
            notice_version="n1",
            command_id=new_id(),
            decided_at=utcnow(),
        )
        await js.publish(
            consent_record_subject(command.call_id),
            msgspec.json.encode(command),
            headers={MSG_ID_HEADER: command.command_id},
        )
        # Committed: the ledger holds it, and its receipt has nowhere to go.
        [record] = await eventually(
            lambda: _records(nc, command.call_id), message="the ledger's commit"
        )
        ledger.kill()
        await js.update_stream(full)
        ledger.env["SB_INSTANCE"] = "consent@another-pod"
        ledger.start()
        await ledger.ready(stack.nats.url)
        stored = await eventually(
            lambda: _stored(nc, command.call_id),
            timeout=RESTART_TIMEOUT_S,
            message="the receipt from the restarted ledger",
        )
    finally:
        await nc.close()
    # One event for the fact, whatever instance published it.
    identities = {(e.source, e.id) for e in stored}
    assert len(identities) == 1, stored
    event = stored[0]
    assert event.source == "urn:switchboard:consent"
    assert event.instance == "consent@another-pod"
    assert event.time == record.recorded_at, "the time the ledger recorded it, not publish time"
    assert event.type == "io.switchboard.consent.recorded.v1"
    data = msgspec.json.decode(event.data)
    assert data["command_id"] == command.command_id
    assert data["receipt"]["sequence"] == record.sequence


async def _records(nc: NATS, call_id: str) -> list[ConsentRecordView]:
    reply = await request(nc, CONSENT_LOOKUP, LookupConsent(call_id=call_id), ConsentRecords, 3)
    return list(reply.records)


async def _stored(nc: NATS, call_id: str) -> list[CloudEvent]:
    """The consent events of ``call_id`` in the events stream (every stored copy)."""
    js = nc.jetstream()
    sub = await js.subscribe(
        f"{EVENTS_PREFIX}.consent.*.{call_id}",
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    out: list[CloudEvent] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except (NatsTimeoutError, TimeoutError):
                return out
            out.append(decode_envelope(msg.data))
    finally:
        await sub.unsubscribe()
