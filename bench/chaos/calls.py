"""Playing the calls, and what each one showed.

Calls are the demo scenarios through the scenario runner (the production agent graph and
clients, text mode, the rules brain: one model per call, never shared between calls in
progress). ``concurrency`` callers each play one call after another, with no pause but
the runner's own. A call is kept as a few facts (``CallFacts``), not its report, so ten
thousand of them fit in memory.

The consent commands JetStream acknowledged are noted as the voice worker publishes them
(``AckedCommands``), so the audit can look for each in the ledger.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from livekit.agents.utils import misc
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api

from switchboard.contracts.call import CallOutcome
from switchboard.contracts.subjects import CONSENT_COMMANDS_PREFIX
from switchboard.runtime.bus import MSG_ID_HEADER
from switchboard.simulation import report as reports
from switchboard.simulation.observer import ObservedEvent
from switchboard.simulation.report import Report
from switchboard.simulation.runner import Live, run_scenario
from switchboard.simulation.scenario import Scenario
from switchboard.simulation.transcript import CALL_SIDE, Line
from switchboard.voice.agents.callback import CallbackOfferTask
from switchboard.voice.brain import RulesBrain
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.wiring import Bus

CALL_BOUND_S = 60.0
"""A call still going after this long is hung: every scenario takes under 15 s without
faults, and no fault lasts more than a few seconds. (The voice worker's own longest wait,
for a transfer that is never answered, is ``SB_TRANSFER_ANSWER_TIMEOUT_S``: 300 s on hold.)"""

SERVED = "served"
TRANSFERRED = "transferred"
CALLBACK = "callback"
HUNG_UP = "caller_hung_up"
"""The scenario's caller hangs up on hold (``[hold] hang_up_at``): abandoning is right."""
FAILED = "failed"
HUNG = "hung"
UNSCRIPTED = "the simulated carrier could not be scripted"
"""The runner's note when the bridge was down as the call began: the carrier then
answers every dial (its default), which changes the scenario's path, not the call's duty."""

_TERMINAL_TRANSFER = ("transfer.connected", "transfer.cancelled")
CANCEL_WAIT_S = 5.0
CALLBACK_OFFER = misc.camel_to_snake_case(CallbackOfferTask.__name__)
"""The callback offer's agent id in a transcript (livekit-agents names agents so)."""


class AckedCommands(JetStreamContext):
    """The JetStream context of the voice worker's consent client, noting each consent
    command the stream acknowledged (its ``Nats-Msg-Id`` is the command id)."""

    def __init__(self, conn: NATS) -> None:
        super().__init__(conn)
        self.acked: dict[str, str] = {}
        """Command id → call id."""
        self.published: dict[str, str] = {}
        """Every command id sent, acknowledged or not → call id."""

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> api.PubAck:
        command_id = str((headers or {}).get(MSG_ID_HEADER, ""))
        ours = subject.startswith(CONSENT_COMMANDS_PREFIX) and bool(command_id)
        call_id = subject.rsplit(".", 1)[-1]
        if ours:
            self.published[command_id] = call_id
        ack = await super().publish(subject, payload, timeout, stream, headers, msg_ttl)
        if ours:
            self.acked[command_id] = call_id
        return ack


@dataclass(frozen=True, slots=True)
class SentCommands:
    """The consent commands the worker processes sent, by command id → call id."""

    acked: dict[str, str]
    """Those JetStream acknowledged."""
    published: dict[str, str]
    """All of them, acknowledged or not."""


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the audit needs from one call."""

    call_id: str
    scenario: str
    ending: str
    """``served``, ``transferred``, ``callback`` (offered, whether or not the scripted
    caller took it), ``caller_hung_up``, ``failed`` or ``hung``."""
    outcome: str
    duration_s: float
    silence_s: float
    """The longest the caller waited for the agents (hold excluded)."""
    hold_s: float
    """The longest the caller was on hold."""
    expectations_met: bool
    """Whether the scenario's own expectations held (faults may rightly change the path)."""
    recordings: tuple[int | None, ...] = ()
    """The consent sequence each recording start was gated on."""
    transfers: bool = False
    problems: tuple[str, ...] = ()
    carrier_scripted: bool = True


@dataclass
class CallDriver:
    bus: Bus
    settings: VoiceSettings
    plays: list[Scenario]
    rng: random.Random
    concurrency: int
    on_done: Callable[[CallFacts], None] = lambda facts: None
    dump: Path | None = None
    """Where the report (or, for a hung call, what was seen) of each bad call is written."""
    max_silence_s: float = 5.0
    facts: list[CallFacts] = field(default_factory=list)

    async def run(self, calls: int) -> list[CallFacts]:
        order = [self.rng.randrange(len(self.plays)) for _ in range(calls)]
        queue = iter(order)

        async def caller() -> None:
            for index in queue:
                facts = await self.play(self.plays[index])
                self.facts.append(facts)
                self.on_done(facts)

        await asyncio.gather(*(caller() for _ in range(min(self.concurrency, calls))))
        return self.facts

    async def play(self, scenario: Scenario) -> CallFacts:
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen = Seen()
        task = asyncio.create_task(
            run_scenario(scenario, self.bus, self.settings, seen.live(), chat_model=RulesBrain())
        )
        await asyncio.wait({task}, timeout=CALL_BOUND_S)
        if not task.done():
            # Where it waits, before cancelling it; a call that does not end when cancelled
            # is left behind (counted as hung either way).
            stuck = awaited(task)
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
            return self._bad(scenario, seen, HUNG, loop.time() - started, stuck)
        if (exc := task.exception()) is not None:  # a crashed call is a bad call, not a bad run
            return self._bad(scenario, seen, FAILED, loop.time() - started, [repr(exc)])
        report = task.result()
        facts = facts_of(scenario, report, loop.time() - started)
        if facts.ending in (FAILED, HUNG) or facts.silence_s > self.max_silence_s:
            self._dump(facts.call_id, reports.to_json(report))
        return facts

    def _bad(
        self, scenario: Scenario, seen: Seen, ending: str, duration_s: float, where: list[str]
    ) -> CallFacts:
        # A call that failed before its first event has no id yet: number it.
        call_id = seen.call_id() or f"{scenario.call_id}-unstarted-{len(self.facts)}"
        self._dump(call_id, seen.to_json(ending, where))
        return CallFacts(
            call_id, scenario.call_id, ending, "", duration_s, 0.0, 0.0, False, problems=(ending,)
        )

    def _dump(self, call_id: str, body: bytes) -> None:
        if self.dump is not None:
            self.dump.mkdir(parents=True, exist_ok=True)
            (self.dump / f"{call_id}.json").write_bytes(body)


class Seen:
    """What a call showed as it happened: enough to tell where a hung call stopped."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.events: list[ObservedEvent] = []

    def live(self) -> Live:
        return Live(on_line=self.lines.append, on_event=self.events.append)

    def call_id(self) -> str:
        return next((str(e.data.get("call_id")) for e in self.events), "")

    def to_json(self, error: str, where: list[str]) -> bytes:
        return msgspec.json.encode(
            {
                "error": error,
                "where": where,
                "lines": [(line.at_s, line.side, line.speaker, line.text) for line in self.lines],
                "events": [(e.at_s, e.kind, e.data) for e in self.events],
            }
        )


def awaited(task: asyncio.Task[Any]) -> list[str]:
    """The chain of awaits a pending task is suspended in, outermost first."""
    out: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:  # a future or a task: what it is says enough
            out.append(f"awaiting {coro!r}"[:300])
            break
        out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


def facts_of(scenario: Scenario, report: Report, duration_s: float) -> CallFacts:
    silence, hold = silences(report)
    kinds = {e.kind for e in report.events}
    problems = tuple(e for e in report.errors if not e.startswith(UNSCRIPTED))
    return CallFacts(
        call_id=report.call_id,
        scenario=scenario.call_id,
        ending=ending(scenario, report.outcome, CALLBACK_OFFER in report.agents, problems),
        outcome=report.outcome,
        duration_s=duration_s,
        silence_s=silence,
        hold_s=hold,
        expectations_met=report.ok,
        recordings=tuple(r.consent_sequence for r in report.recording if r.action == "started"),
        transfers=any(k.startswith("transfer.") for k in kinds),
        problems=problems,
        carrier_scripted=len(problems) == len(report.errors),
    )


def ending(
    scenario: Scenario, outcome: str, callback_offered: bool, errors: tuple[str, ...]
) -> str:
    if errors:
        return FAILED
    if outcome == CallOutcome.RESOLVED:
        return SERVED
    if outcome == CallOutcome.TRANSFERRED:
        return TRANSFERRED
    if outcome == CallOutcome.CALLBACK or callback_offered:
        return CALLBACK
    if outcome == CallOutcome.ABANDONED and scenario.hold and scenario.hold.hang_up_at:
        return HUNG_UP
    return FAILED


def silences(report: Report) -> tuple[float, float]:
    """The caller's longest wait for the agents, and longest time on hold.

    The caller's side of the call is a sequence of moments: the call's start, every line
    said on it (by the caller or an agent) and its end (``call.ended``). The silence is the
    longest gap between two of them, less the time on hold in that gap (a caller on hold
    hears hold audio; the voice worker's own hold reminders bound that). Time on hold runs
    from a transfer's first event to its terminal one, or the end of the call.
    """
    ended = next((e.at_s for e in report.events if e.kind == "call.ended"), None)
    moments = [0.0] + [u.at_s for u in report.transcript if u.side == CALL_SIDE and u.heard]
    end = ended if ended is not None else max(moments)
    moments = sorted(m for m in [*moments, end] if m <= end)
    holds = hold_intervals(report, end)
    longest = 0.0
    for a, b in itertools.pairwise(moments):
        on_hold = sum(max(0.0, min(b, h1) - max(a, h0)) for h0, h1 in holds)
        longest = max(longest, b - a - on_hold)
    return round(longest, 3), round(max((h1 - h0 for h0, h1 in holds), default=0.0), 3)


def hold_intervals(report: Report, end: float) -> list[tuple[float, float]]:
    spans: dict[str, list[float]] = {}
    for e in report.events:
        if not e.kind.startswith("transfer."):
            continue
        span = spans.setdefault(str(e.data.get("transfer_id")), [e.at_s, end])
        if e.kind in _TERMINAL_TRANSFER or (e.kind == "transfer.failed" and e.data.get("final")):
            span[1] = min(span[1], e.at_s)
    merged: list[tuple[float, float]] = []
    for start, stop in sorted((s, t) for s, t in spans.values()):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged
