"""Helpers the sip-bridge tests share (a unique module name; conftest puts this folder
on the path): the humans who answer warm transfers and decide, in place of the voice
worker's briefing session, in memory (``Humans``) or on the bus (``BusHumans``)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec
from nats.aio.client import Client as NATS

from switchboard.contracts.envelope import decode_event
from switchboard.contracts.subjects import TRANSFER_DECIDE
from switchboard.contracts.transfer import (
    DeclineReason,
    HumanDecision,
    HumanDecisionNoted,
    ReportHumanDecision,
    TransferAnswered,
)
from switchboard.runtime.bus import RequestFailed, request
from switchboard.sip_bridge.journal import Claim, JournalEntry

TEST_ALLOW = "+1415555*,sip:*@pbx.example.com"
"""The allow-list the tests' bridges run with (their desks are in these ranges)."""

Decision = HumanDecision | tuple[HumanDecision, DeclineReason] | None
"""What the next human who answers decides (``None``: stays in the briefing, undecided)."""


def report_for(event: TransferAnswered, decision: Decision) -> ReportHumanDecision | None:
    if decision is None:
        return None
    verdict, why = decision if isinstance(decision, tuple) else (decision, None)
    return ReportHumanDecision(
        call_id=event.call_id,
        transfer_id=event.transfer_id,
        attempt=event.attempt,
        decision=verdict,
        decline_reason=why,
    )


class Decides(Protocol):
    def decide(self, report: ReportHumanDecision) -> HumanDecisionNoted: ...


class Humans:
    """The people who answer warm transfers, in answer order, deciding as scripted (accept
    when the script has run out): what the voice worker's briefing session reports."""

    def __init__(self, desk: Decides, decisions: Iterable[Decision] = ()) -> None:
        self.desk = desk
        self.decisions: deque[Decision] = deque(decisions)
        self.noted: list[HumanDecisionNoted] = []

    def answered(self, event: TransferAnswered) -> None:
        decision = self.decisions.popleft() if self.decisions else HumanDecision.ACCEPT
        report = report_for(event, decision)
        if report is not None:
            # Decided a moment later, like a briefing session hearing of the answer.
            asyncio.get_running_loop().call_soon(self._decide, report)

    def _decide(self, report: ReportHumanDecision) -> None:
        self.noted.append(self.desk.decide(report))


class BusHumans:
    """Humans on the bus: each warm ``transfer.answered`` event gets the next decision,
    sent on ``sb.transfer.decide`` as the voice worker's briefing session would."""

    def __init__(self, nc: NATS, decisions: Iterable[Decision] = ()) -> None:
        self.nc = nc
        self.decisions: deque[Decision] = deque(decisions)
        self.noted: list[HumanDecisionNoted] = []
        self.refused: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> BusHumans:
        await self.nc.subscribe("sb.evt.transfer.answered.*", cb=self._on_answered)
        await self.nc.flush()
        return self

    async def _on_answered(self, msg: Any) -> None:
        _, event = decode_event(msg.data)
        if not isinstance(event, TransferAnswered) or not event.consult_room:
            return
        decision = self.decisions.popleft() if self.decisions else HumanDecision.ACCEPT
        report = report_for(event, decision)
        if report is not None:
            task = asyncio.create_task(self._decide(report))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _decide(self, report: ReportHumanDecision) -> None:
        try:
            self.noted.append(
                await request(self.nc, TRANSFER_DECIDE, report, HumanDecisionNoted, 2.0)
            )
        except RequestFailed as exc:
            self.refused.append(str(exc.error.code))


class MemoryJournal:
    """The transfer journal in memory, shared by the desks of a test as the KV bucket is by
    bridge instances; ``dead`` owners no longer answer."""

    def __init__(self) -> None:
        self.records: dict[str, Claim] = {}
        self.dead: set[str] = set()
        self._revision = 0

    async def save(self, entry: JournalEntry) -> None:
        self._revision += 1
        self.records[entry.transfer_id] = Claim(entry, self._revision)

    async def load(self, transfer_id: str) -> Claim | None:
        return self.records.get(transfer_id)

    async def active(self) -> list[Claim]:
        return [c for c in self.records.values() if not c.entry.ended]

    async def claim(self, claim: Claim, owner: str) -> bool:
        current = self.records.get(claim.entry.transfer_id)
        if current is None or current.revision != claim.revision:
            return False
        await self.save(msgspec.structs.replace(claim.entry, owner=owner))
        return True

    async def owner_alive(self, owner: str) -> bool:
        return owner not in self.dead


class UnreachableJournal(MemoryJournal):
    """A bucket that refuses the first ``failures`` writes, as it does while nats-server
    restarts; ``saved`` is what it took, in order."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.saved: list[JournalEntry] = []

    async def save(self, entry: JournalEntry) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the bucket is unreachable")
        self.saved.append(entry)
        await super().save(entry)
