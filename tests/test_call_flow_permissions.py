"""Scenario (a) end to end with NATS permissions on.

Every backend service and the voice worker connect as their own users with the
permissions generated from the contracts; the test reads the call's events the way a CRM
does (its durable consumer, its own user) and audits the ledger as the ops user. A
permission the code needs but the table lacks shows up as a refused subject in a log.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from switchboard.contracts import (
    ConsentDecision,
    ConsentRecorded,
    ConsentRecords,
    HandoffDecision,
    HandoffTarget,
    LedgerVerification,
    LookupConsent,
    VerifyLedger,
    decode_event,
    streams,
)
from switchboard.contracts.subjects import CONSENT_LOOKUP, CONSENT_VERIFY, call_events_wildcard
from switchboard.runtime.bus import request
from tests.stack import READ_ONLY_CRM, Stack
from tests.test_call_flow import REQUIRED_ORDER, SCENARIO, run_voice_scenario

CRM = READ_ONLY_CRM


async def read_call_events_as_crm(stack: Stack, call_id: str) -> list[tuple[str, Any]]:
    """One call's events through a CRM user's durable consumer, until ``call.ended``."""
    nc = await nats.connect(stack.nats.url, **stack.connect_options(CRM))
    try:
        psub = await nc.jetstream().pull_subscribe(
            call_events_wildcard(call_id),
            durable=CRM,
            stream=streams.EVENTS.name,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        out: list[tuple[str, Any]] = []
        while True:
            for msg in await psub.fetch(10, timeout=10):
                event, payload = decode_event(msg.data)
                await msg.ack()
                name = event.type.removeprefix("io.switchboard.").rsplit(".", 1)[0]
                out.append((name, payload))
                if name == "call.ended":
                    return out
    finally:
        await nc.close()


async def audit(stack: Stack, call_id: str) -> tuple[ConsentRecords, LedgerVerification]:
    nc = await nats.connect(stack.nats.url, **stack.connect_options("ops"))
    try:
        records: ConsentRecords = await request(
            nc, CONSENT_LOOKUP, LookupConsent(call_id=call_id), ConsentRecords, 3
        )
        verification: LedgerVerification = await request(
            nc, CONSENT_VERIFY, VerifyLedger(), LedgerVerification, 10
        )
        return records, verification
    finally:
        await nc.close()


def test_scenario_a_passes_with_every_process_as_its_own_nats_user(secured_stack: Stack) -> None:
    assert secured_stack.passwords is not None, "the server enforces the generated permissions"
    report = run_voice_scenario(secured_stack, SCENARIO)
    assert report["ok"] is True, report.get("errors")
    call_id = report["call_id"]

    events = asyncio.run(read_call_events_as_crm(secured_stack, call_id))
    names = [name for name, _ in events]
    positions = [names.index(name) for name in REQUIRED_ORDER]
    assert positions == sorted(positions), names
    by_name = dict(events)
    recorded = by_name["consent.recorded"]
    assert isinstance(recorded, ConsentRecorded)
    assert recorded.decision is ConsentDecision.GRANTED
    decision = by_name["escalation.decided"]
    assert isinstance(decision, HandoffDecision)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert not decision.fallback, "the router answered and published its own decision"

    records, verification = asyncio.run(audit(secured_stack, call_id))
    assert [r.sequence for r in records.records] == [recorded.receipt.sequence]
    assert verification.ok, verification

    logs = secured_stack.logs(tail=None).lower()
    assert "permissions violation" not in logs, secured_stack.logs()
    assert "authorization violation" not in logs, secured_stack.logs()
