"""The checks after a chaos run: the ledger, the chain, recordings, transfers, legs.

Each reads the system of record, not what the calls saw: the ledger's table for consent,
``python -m switchboard.consent verify`` for the chain, the ``SB_EVENTS`` stream for the
transfers' events, the bridge (``sb.transfer.legs``) for legs.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
import psycopg
from nats.aio.client import Client as NATS

from bench.chaos.calls import CallFacts, SentCommands
from bench.chaos.events import stored_events
from bench.chaos.stack import ChaosStack
from switchboard.contracts.consent import ConsentDecision, LedgerVerification
from switchboard.contracts.subjects import EVENTS_PREFIX, TRANSFER_LEGS
from switchboard.contracts.transfer import LegState, TransferLegs, TransferLegsQuery
from switchboard.devstack.launcher import inherited_environment
from switchboard.runtime.bus import RequestFailed, request

DRAIN_TIMEOUT_S = 120.0
"""How long the ledger may take to append the commands still in its stream after the run."""
POLL_S = 0.5
LEGS_TIMEOUT_S = 5.0
LEGS_AT_ONCE = 50


@dataclass(frozen=True, slots=True)
class LedgerRow:
    seq: int
    command_id: str
    call_id: str
    decision: str


@dataclass
class ConsentAudit:
    acked: int = 0
    records: int = 0
    missing: list[str] = field(default_factory=list)
    """Acknowledged command ids not in the ledger."""
    duplicates: int = 0
    """Records beyond one per command id, and per call beyond the commands it sent."""
    strangers: int = 0
    """Records of command ids this run never sent."""
    dead_letters: int = 0
    chain: LedgerVerification | None = None
    chain_error: str = ""
    recordings_without_receipt: list[str] = field(default_factory=list)


def ledger_rows(dsn: str) -> list[LedgerRow]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT seq, command_id, call_id, decision FROM consent_records ORDER BY seq"
        ).fetchall()
    return [LedgerRow(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def dead_letters(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    return int(row[0]) if row else 0


async def drained_ledger(dsn: str, acked: Iterable[str]) -> list[LedgerRow]:
    """The ledger's rows once every acknowledged command is in it, or after the bound."""
    wanted = set(acked)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT_S
    while True:
        rows = await asyncio.to_thread(ledger_rows, dsn)
        if wanted <= {r.command_id for r in rows} or loop.time() >= deadline:
            return rows
        await asyncio.sleep(POLL_S)  # polling with a bound: the ledger has no "drained" signal


def verify_chain(stack: ChaosStack) -> tuple[LedgerVerification | None, str]:
    """``python -m switchboard.consent verify --json`` on the ledger's database."""
    out = subprocess.run(
        [sys.executable, "-m", "switchboard.consent", "verify", "--json"],
        env={**inherited_environment(), **stack.ledger_env()},
        capture_output=True,
        check=False,
    )
    try:
        return msgspec.json.decode(out.stdout.strip().splitlines()[-1], type=LedgerVerification), ""
    except (IndexError, msgspec.DecodeError):
        return None, f"verify exited {out.returncode}: {out.stderr.decode(errors='replace')[-500:]}"


async def audit_consent(
    stack: ChaosStack, commands: SentCommands, calls: list[CallFacts]
) -> ConsentAudit:
    audit = ConsentAudit(acked=len(commands.acked))
    rows = await drained_ledger(stack.ledger_dsn, commands.acked)
    audit.records = len(rows)
    per_command = Counter(r.command_id for r in rows)
    audit.missing = sorted(set(commands.acked) - set(per_command))
    audit.duplicates = sum(n - 1 for n in per_command.values() if n > 1)
    sent_per_call = Counter(commands.published.values())
    stored_per_call = Counter(r.call_id for r in rows)
    audit.duplicates += sum(max(0, n - sent_per_call[call]) for call, n in stored_per_call.items())
    audit.strangers = sum(1 for c in per_command if c not in commands.published)
    audit.dead_letters = await asyncio.to_thread(dead_letters, stack.ledger_dsn)
    audit.chain, audit.chain_error = await asyncio.to_thread(verify_chain, stack)
    granted = {(r.call_id, r.seq) for r in rows if r.decision == ConsentDecision.GRANTED}
    for call in calls:
        for sequence in call.recordings:
            if sequence is None or (call.call_id, sequence) not in granted:
                audit.recordings_without_receipt.append(call.call_id)
    return audit


@dataclass
class TransferAudit:
    transfers: int = 0
    without_terminal: list[str] = field(default_factory=list)
    calls_checked: int = 0
    legs_left: list[str] = field(default_factory=list)
    """Calls the bridge still holds an open leg or a running transfer of (or did not say)."""


async def transfer_events(nc: NATS) -> dict[str, list[tuple[str, bool]]]:
    """Every transfer event in ``SB_EVENTS``: transfer id → (event name, final) in order."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for event in await stored_events(nc, f"{EVENTS_PREFIX}.transfer.>"):
        data = msgspec.json.decode(event.data)
        name = event.type.split(".")[3]  # io.switchboard.transfer.<name>.v1
        out.setdefault(str(data.get("transfer_id")), []).append(
            (name, bool(data.get("final", False)))
        )
    return out


def terminal(steps: list[tuple[str, bool]]) -> bool:
    return any(
        name in ("connected", "cancelled") or (name == "failed" and final) for name, final in steps
    )


async def audit_transfers(nc: NATS, calls: list[CallFacts]) -> TransferAudit:
    audit = TransferAudit()
    events = await transfer_events(nc)
    audit.transfers = len(events)
    audit.without_terminal = sorted(t for t, steps in events.items() if not terminal(steps))
    with_transfers = [c.call_id for c in calls if c.transfers]
    audit.calls_checked = len(with_transfers)
    slots = asyncio.Semaphore(LEGS_AT_ONCE)

    async def check(call_id: str) -> None:
        async with slots:
            try:
                legs = await request(
                    nc,
                    TRANSFER_LEGS,
                    TransferLegsQuery(call_id=call_id),
                    TransferLegs,
                    LEGS_TIMEOUT_S,
                )
            except RequestFailed:
                audit.legs_left.append(call_id)
                return
        if legs.in_progress or any(leg.state == LegState.OPEN for leg in legs.legs):
            audit.legs_left.append(call_id)

    await asyncio.gather(*(check(c) for c in with_transfers))
    return audit
