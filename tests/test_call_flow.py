"""One call through every service: real subprocesses, real NATS, real ledger.

The voice worker plays scenario (a) through the real agent graph with the rules brain;
the test then reads the call's CloudEvents from the events stream and checks them
against the ledger and the router's and bridge's contracts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import nats
from nats.js.api import DeliverPolicy

from switchboard.contracts import (
    CallEnded,
    CallStarted,
    ConsentDecision,
    ConsentRecorded,
    ConsentRecords,
    HandoffDecision,
    HandoffTarget,
    LedgerVerification,
    LookupConsent,
    TransferAnswered,
    TransferDialing,
    VerifyLedger,
    decode_event,
)
from switchboard.contracts.envelope import CloudEvent, spec_for_type
from switchboard.contracts.subjects import CONSENT_LOOKUP, CONSENT_VERIFY, call_events_wildcard
from switchboard.runtime.bus import request
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "a_consent_billing_manager_transfer.toml"
REQUIRED_ORDER = [
    "call.started",
    "consent.recorded",
    "escalation.decided",
    "transfer.dialing",
    "transfer.answered",
    "call.ended",
]


def run_voice_scenario(stack: Stack, scenario: Path) -> dict[str, Any]:
    """Run the voice worker's scenario runner as a subprocess, like an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.simulation", "run-scenario", str(scenario), "--json"],
        env={**stack.env_for_subprocess(), "SB_VAR_DIR": str(stack.workdir / "voice")},
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:], stack.logs())
    (stack.workdir / "logs" / "voice.log").open("ab").write(done.stderr)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def read_call_events(url: str, call_id: str) -> list[tuple[str, Any]]:
    """Every event of one call, in stream order, until ``call.ended``."""
    return [(name, payload) for _, name, payload in await read_call_cloudevents(url, call_id)]


async def read_call_cloudevents(url: str, call_id: str) -> list[tuple[CloudEvent, str, Any]]:
    """Every event of one call with its envelope, in stream order, until ``call.ended``."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            call_events_wildcard(call_id), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        out: list[tuple[CloudEvent, str, Any]] = []
        while True:
            msg = await sub.next_msg(timeout=10)
            event, payload = decode_event(msg.data)
            assert event.subject == call_id
            assert msg.headers is not None
            assert msg.headers["Nats-Msg-Id"] == event.id
            name = event.type.removeprefix("io.switchboard.").rsplit(".", 1)[0]
            out.append((event, name, payload))
            if name == "call.ended":
                return out
    finally:
        await nc.close()


def test_one_call_goes_through_consent_router_and_bridge_in_order(stack: Stack) -> None:
    report = run_voice_scenario(stack, SCENARIO)
    call_id = report["call_id"]
    envelopes = asyncio.run(read_call_cloudevents(stack.nats.url, call_id))
    events = [(name, payload) for _, name, payload in envelopes]
    names = [name for name, _ in events]

    positions = [names.index(name) for name in REQUIRED_ORDER]
    assert positions == sorted(positions), names
    by_name = dict(events)

    recorded = by_name["consent.recorded"]
    assert isinstance(recorded, ConsentRecorded)
    assert recorded.decision is ConsentDecision.GRANTED
    assert recorded.receipt.sequence >= 1
    assert len(recorded.receipt.chain_hash) == 64
    # Recording started only after the receipt, and names the receipt that allowed it.
    assert names.index("recording.started") > names.index("consent.recorded")
    assert by_name["recording.started"].consent_sequence == recorded.receipt.sequence

    decision = by_name["escalation.decided"]
    assert isinstance(decision, HandoffDecision)
    assert decision.target is HandoffTarget.HUMAN_QUEUE
    assert decision.destinations, "the router names destinations from its configuration"
    assert decision.rules_fired

    dialing = by_name["transfer.dialing"]
    answered = by_name["transfer.answered"]
    assert isinstance(dialing, TransferDialing)
    assert isinstance(answered, TransferAnswered)
    assert dialing.transfer_id == answered.transfer_id
    assert dialing.destination_id == decision.destinations[0].id

    # Correlation: each transfer event names the decision behind it, and the call's end
    # names its start and its transfer.
    transfer_events = [p for n, p in events if n.startswith("transfer.")]
    assert {p.decision_id for p in transfer_events} == {decision.decision_id}
    started, ended = by_name["call.started"], by_name["call.ended"]
    assert isinstance(started, CallStarted)
    assert isinstance(ended, CallEnded)
    assert ended.started_at == started.started_at
    assert ended.transfer_id == dialing.transfer_id
    # Identity and order: a source per service, the time of the fact, the voice worker's
    # events of the call numbered 1..n.
    for event, name, _ in envelopes:
        assert event.source == spec_for_type(event.type).source, name
    by_type = {name: event for event, name, _ in envelopes}
    assert by_type["call.started"].time == started.started_at
    assert by_type["call.ended"].time == ended.ended_at
    assert by_type["consent.recorded"].time == recorded.receipt.recorded_at
    voice = [e for e, _, _ in envelopes if e.source == "urn:switchboard:voice"]
    assert [int(e.sequence or 0) for e in voice] == list(range(1, len(voice) + 1))
    assert all(e.sequence is None for e, _, _ in envelopes if e not in voice)

    async def ledger_checks() -> tuple[ConsentRecords, LedgerVerification]:
        nc = await nats.connect(stack.nats.url)
        try:
            records = await request(
                nc, CONSENT_LOOKUP, LookupConsent(call_id=call_id), ConsentRecords, 3
            )
            verification = await request(nc, CONSENT_VERIFY, VerifyLedger(), LedgerVerification, 10)
            return records, verification
        finally:
            await nc.close()

    records, verification = asyncio.run(ledger_checks())
    assert [r.sequence for r in records.records] == [recorded.receipt.sequence]
    assert records.records[0].chain_hash == recorded.receipt.chain_hash
    assert verification.ok, verification

    # The report the runner printed agrees with the bus.
    assert report["ok"] is True


def test_no_service_log_holds_the_callers_number_or_words(stack: Stack) -> None:
    scenario = tomllib.loads(SCENARIO.read_text())
    call_id = run_voice_scenario(stack, SCENARIO)["call_id"]
    logs = stack.logs(tail=None)
    assert call_id in logs, "the services log the call's facts (so the check below means something)"
    number = scenario["caller_number"]
    for secret in [number, number.removeprefix("+"), *scenario["turns"]]:
        assert secret not in logs, f"personal data in a service log: {secret[:12]}…"
