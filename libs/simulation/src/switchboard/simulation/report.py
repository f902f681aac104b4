"""The report of one scripted call: transcript (the caller's and, for warm transfers, the
humans' in the consult room), bus events, receipts, transfers and their legs, recording.

Printed as text (also line by line while the call happens) or as JSON with ``--json``.
The report is the output a person asked for, so it shows what was said; it is never
logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from switchboard.contracts.transfer import LegState, TransferLegs
from switchboard.simulation.observer import ObservedEvent
from switchboard.simulation.scenario import Expect
from switchboard.simulation.transcript import BRIEFING, CALL_SIDE, CALLER, CONSULT_SIDE, Line
from switchboard.voice.recording import TimelineEntry
from switchboard.voice.transfer.facts import BRIEFING_START


class Utterance(msgspec.Struct, frozen=True, omit_defaults=True):
    speaker: str
    text: str
    at_s: float
    side: str = CALL_SIDE
    """``call`` (the caller's conversation) or ``consult`` (a human being briefed)."""
    attempt: int | None = None
    heard: bool = True
    note: str = ""


class EventView(msgspec.Struct, frozen=True):
    kind: str
    type: str
    source: str
    time: str
    at_s: float
    data: dict[str, Any]


class ReceiptView(msgspec.Struct, frozen=True):
    kind: str
    decision: str
    sequence: int
    chain_hash: str
    command_id: str


class TransferStep(msgspec.Struct, frozen=True, omit_defaults=True):
    state: str
    destination_id: str | None = None
    attempt: int | None = None
    reason: str | None = None
    sip_status: int | None = None
    detail: str | None = None


class LegView(msgspec.Struct, frozen=True, omit_defaults=True):
    transfer_id: str
    attempt: int
    destination_id: str
    state: str
    ended_by: str = ""


class TransferView(msgspec.Struct, frozen=True):
    transfer_id: str
    steps: list[TransferStep]


class RecordingView(msgspec.Struct, frozen=True, omit_defaults=True):
    at_s: float
    action: str
    detail: str
    consent_sequence: int | None = None
    recording_id: str | None = None


class ReplyView(msgspec.Struct, frozen=True, omit_defaults=True):
    """Audio mode: one agent reply as the caller's speaker played it."""

    agent: str
    said: str
    """The reply as the history keeps it (only what was played, when it was cut)."""
    at_s: float
    """When the session added it to the history (audio seconds)."""
    interrupted: bool
    pushed_s: float = 0.0
    """Seconds of audio synthesised for it."""
    played_s: float = 0.0
    """Seconds of it the caller heard."""
    paused: int = 0
    resumed: bool = False
    full: str | None = None
    """The whole reply as generated, before any of it was played."""
    talked_over_by: list[str] = msgspec.field(default_factory=list)
    """Caller lines said while it played."""


class CallerSpeechView(msgspec.Struct, frozen=True):
    """Audio mode: one caller utterance."""

    text: str
    kind: str
    """``turn``, ``backchannel`` or ``on_hold``."""
    start_s: float
    end_s: float
    delivered_s: float
    """How much of it reached the session (none while its input was off)."""
    transcribed: bool
    """Whether the recogniser returned its words (enough of its audio was uploaded)."""


class AudioView(msgspec.Struct, frozen=True):
    speed: float
    replies: list[ReplyView]
    caller: list[CallerSpeechView]
    transcriptions: int
    """Uploads to the recogniser."""
    syntheses: int
    """Requests to the speech synthesiser (one per sentence)."""


class Check(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    detail: str


class Report(msgspec.Struct, kw_only=True):
    scenario: str
    call_id: str
    outcome: str
    consent: str | None
    ok: bool
    agents: list[str]
    transcript: list[Utterance]
    events: list[EventView]
    receipts: list[ReceiptView]
    transfers: list[TransferView]
    legs: list[LegView]
    """What the bridge held for the call once it was over (``sb.transfer.legs``)."""
    transfers_in_progress: list[str]
    recording: list[RecordingView]
    checks: list[Check]
    errors: list[str]
    audio: AudioView | None = None
    """Audio mode only: the replies as played and cut, and the caller's speech."""


def build(
    *,
    scenario: str,
    call_id: str,
    outcome: str,
    consent: str | None,
    agents: list[str],
    lines: list[Line],
    events: list[ObservedEvent],
    timeline: list[TimelineEntry],
    expect: Expect,
    errors: list[str],
    legs: TransferLegs | None = None,
    audio: AudioView | None = None,
) -> Report:
    report = Report(
        scenario=scenario,
        call_id=call_id,
        outcome=outcome,
        consent=consent,
        ok=False,
        agents=agents,
        transcript=[
            Utterance(
                line.speaker, line.text, line.at_s, line.side, line.attempt, line.heard, line.note
            )
            for line in lines
        ],
        events=[EventView(e.kind, e.type, e.source, e.time, e.at_s, e.data) for e in events],
        receipts=_receipts(events),
        transfers=_transfers(events),
        legs=[
            LegView(leg.transfer_id, leg.attempt, leg.destination_id, leg.state, leg.ended_by)
            for leg in (legs.legs if legs else [])
        ],
        transfers_in_progress=list(legs.in_progress) if legs else [],
        recording=[
            RecordingView(t.at_s, t.action, t.detail, t.consent_sequence, t.recording_id)
            for t in timeline
        ],
        checks=[],
        errors=errors,
        audio=audio,
    )
    report.checks = check(expect, report) + always(report, legs_known=legs is not None)
    if audio is not None:
        report.checks += check_audio(expect, audio)
    report.ok = not errors and all(c.ok for c in report.checks)
    return report


def _receipts(events: list[ObservedEvent]) -> list[ReceiptView]:
    """One entry per ledger record (a revocation is announced by two events)."""
    out: list[ReceiptView] = []
    seen: set[tuple[object, object]] = set()
    for e in events:
        receipt = e.data.get("receipt")
        if e.kind in ("consent.recorded", "consent.revoked") and isinstance(receipt, dict):
            key = (receipt.get("sequence"), e.data.get("command_id"))
            if key in seen:
                continue
            seen.add(key)
            out.append(
                ReceiptView(
                    kind=e.kind,
                    decision=str(e.data.get("decision", "revoked")),
                    sequence=int(receipt.get("sequence", 0)),
                    chain_hash=str(receipt.get("chain_hash", "")),
                    command_id=str(e.data.get("command_id", "")),
                )
            )
    return out


def _transfers(events: list[ObservedEvent]) -> list[TransferView]:
    by_id: dict[str, list[TransferStep]] = {}
    for e in events:
        if not e.kind.startswith("transfer."):
            continue
        d = e.data
        by_id.setdefault(str(d.get("transfer_id", "")), []).append(
            TransferStep(
                state=e.kind.split(".", 1)[1],
                destination_id=d.get("destination_id"),
                attempt=d.get("attempt"),
                reason=d.get("reason"),
                sip_status=d.get("sip_status"),
                detail=d.get("detail") or None,
            )
        )
    return [TransferView(tid, steps) for tid, steps in by_id.items()]


def _in_order(wanted: list[str], seen: list[str]) -> bool:
    """Whether ``wanted`` is a subsequence of ``seen``."""
    it = iter(seen)
    return all(any(w == s for s in it) for w in wanted)


def check(expect: Expect, report: Report) -> list[Check]:
    kinds = [e.kind for e in report.events]
    checks: list[Check] = []
    if expect.events_in_order:
        checks.append(
            Check(
                "events in order",
                _in_order(expect.events_in_order, kinds),
                f"wanted {expect.events_in_order}, saw {kinds}",
            )
        )
    for kind in expect.absent_events:
        checks.append(Check(f"no {kind}", kind not in kinds, f"saw {kinds.count(kind)}"))
    if expect.agents:
        checks.append(
            Check(
                "agents",
                _in_order(expect.agents, report.agents),
                f"wanted {expect.agents}, saw {report.agents}",
            )
        )
    if expect.consent is not None:
        checks.append(
            Check("consent", report.consent == expect.consent, f"consent was {report.consent}")
        )
    if expect.recording is not None:
        actions = [r.action for r in report.recording if r.action in ("started", "stopped")]
        checks.append(
            Check("recording", actions == expect.recording, f"recording timeline {actions}")
        )
    if expect.outcome is not None:
        checks.append(
            Check("outcome", report.outcome == expect.outcome, f"outcome was {report.outcome}")
        )
    if expect.transfer_states:
        states = [s.state for t in report.transfers for s in t.steps]
        checks.append(
            Check(
                "transfer states",
                _in_order(expect.transfer_states, states),
                f"wanted {expect.transfer_states}, saw {states}",
            )
        )
    if expect.transfer_failures:
        reasons = [s.reason or "" for t in report.transfers for s in t.steps if s.state == "failed"]
        checks.append(
            Check(
                "transfer failures",
                reasons == expect.transfer_failures,
                f"wanted {expect.transfer_failures}, saw {reasons}",
            )
        )
    if expect.callback_requested is not None:
        requested = "call.callback_requested" in kinds
        checks.append(
            Check(
                "callback",
                requested == expect.callback_requested,
                f"callback requested: {requested}",
            )
        )
    if expect.spoken:
        said = [
            u.text.lower() for u in report.transcript if u.speaker != CALLER and u.side == CALL_SIDE
        ]
        found = _in_order_fragments([s.lower() for s in expect.spoken], said)
        checks.append(Check("spoken", found, f"wanted {expect.spoken} in agent lines"))
    if expect.human_spoken:
        briefed = [u.text.lower() for u in report.transcript if u.speaker == BRIEFING]
        found = _in_order_fragments([s.lower() for s in expect.human_spoken], briefed)
        checks.append(
            Check("said to the humans", found, f"wanted {expect.human_spoken} in briefing lines")
        )
    if expect.caller_unheard:
        unheard = [u.text.lower() for u in report.transcript if not u.heard]
        found = _in_order_fragments([s.lower() for s in expect.caller_unheard], unheard)
        checks.append(
            Check("not acted on", found, f"wanted {expect.caller_unheard} unheard, saw {unheard}")
        )
    return checks


def check_audio(expect: Expect, audio: AudioView) -> list[Check]:
    """Audio mode: replies cut, played out or resumed, and every cut one cut in the history."""
    checks: list[Check] = []

    def text(r: ReplyView) -> str:
        return (r.full or r.said).lower()

    def find(fragments: list[str], ok: Callable[[ReplyView], bool], name: str) -> None:
        if not fragments:
            return
        chosen = [r for r in audio.replies if ok(r)]
        found = _in_order_fragments([f.lower() for f in fragments], [text(r) for r in chosen])
        checks.append(
            Check(name, found, f"wanted {fragments}; such replies: {[r.said for r in chosen]}")
        )

    find(expect.interrupted, lambda r: r.interrupted, "interrupted")
    find(
        expect.played_out,
        lambda r: not r.interrupted and bool(r.talked_over_by) and r.played_s >= r.pushed_s,
        "talked over, played out",
    )
    find(
        expect.resumed,
        lambda r: r.resumed and not r.interrupted and r.played_s >= r.pushed_s,
        "paused, resumed",
    )
    cut = [r for r in audio.replies if r.interrupted]
    uncut = [
        r.said
        for r in cut
        if r.played_s >= r.pushed_s or (r.full is not None and len(r.said) >= len(r.full))
    ]
    if cut:
        checks.append(
            Check(
                "interrupted replies are cut in the history",
                not uncut,
                f"kept whole: {uncut}" if uncut else f"{len(cut)} cut where they stopped",
            )
        )
    return checks


def always(report: Report, *, legs_known: bool) -> list[Check]:
    """Checks every call with a transfer gets, whatever its scenario expects."""
    checks: list[Check] = []
    briefed = [e for e in report.events if e.kind == "transfer.briefed"]
    if briefed:
        late = [
            e.data.get("attempt")
            for e in briefed
            if not any(
                u.speaker == BRIEFING
                and u.attempt == e.data.get("attempt")
                and u.text.startswith(BRIEFING_START)
                and u.at_s <= e.at_s
                for u in report.transcript
            )
        ]
        checks.append(
            Check(
                "briefing before transfer.briefed",
                not late,
                f"attempts briefed without the briefing spoken first: {late}"
                if late
                else f"{len(briefed)} briefed after their briefing",
            )
        )
    if any(e.kind.startswith("transfer.") for e in report.events):
        open_legs = [leg for leg in report.legs if leg.state == LegState.OPEN]
        ok = legs_known and not report.transfers_in_progress and not open_legs
        detail = (
            "the bridge did not say what it holds (sb.transfer.legs)"
            if not legs_known
            else f"in progress: {report.transfers_in_progress}, open legs: "
            f"{[(leg.transfer_id, leg.attempt) for leg in open_legs]}, "
            f"legs: {[(leg.attempt, leg.state, leg.ended_by) for leg in report.legs]}"
        )
        checks.append(Check("no transfer leg outlives the call", ok, detail))
    return checks


def _in_order_fragments(fragments: list[str], lines: list[str]) -> bool:
    """Whether the fragments were said in this order (several may be in one line)."""
    line, at = 0, 0
    for fragment in fragments:
        while line < len(lines):
            found = lines[line].find(fragment, at)
            if found >= 0:
                at = found + len(fragment)
                break
            line, at = line + 1, 0
        else:
            return False
    return True


# --- rendering -------------------------------------------------------------------------


def format_line(line: Line | Utterance) -> str:
    who = "caller" if line.speaker == CALLER else line.speaker
    if line.side == CONSULT_SIDE:
        # The consult room, indented: the human of each attempt and the briefing agent.
        who = f"⤷ {who} #{line.attempt}" if line.attempt else f"⤷ {who}"
    text = line.text if line.heard else f"({line.text}) [{line.note or 'on hold'}: not heard]"
    return f"  {who:>22} │ {text}"


def format_event(event: ObservedEvent | EventView) -> str:
    return f"  {'◆ ' + event.kind:>22} │ {describe(event.kind, event.data)}"


def describe(kind: str, d: dict[str, Any]) -> str:
    """A one-line account of an event for people (the raw data is in the JSON report)."""
    receipt = d.get("receipt") if isinstance(d.get("receipt"), dict) else {}
    seq = receipt.get("sequence") if receipt else None
    chain = str(receipt.get("chain_hash", ""))[:12] if receipt else ""
    match kind:
        case "call.started":
            return f"call {d.get('call_id')} started (trunk {d.get('trunk') or '-'})"
        case "consent.recorded":
            return (
                f"ledger recorded '{d.get('decision')}' ({d.get('mode')}, {d.get('jurisdiction')},"
                f" notice {d.get('notice_version')}): receipt #{seq}, chain {chain}…"
            )
        case "consent.revoked":
            return f"ledger recorded the revocation: receipt #{seq}, chain {chain}…"
        case "escalation.decided":
            rules = ", ".join(r.get("rule_id", "?") for r in d.get("rules_fired", []))
            where = f" queue {d.get('queue')}" if d.get("queue") else ""
            fallback = " [local fallback]" if d.get("fallback") else ""
            return f"router decided {d.get('target')}{where}{fallback}; rules: {rules or '-'}"
        case "agent.handed_off":
            return f"{d.get('from_agent')} → {d.get('to_agent')} ({d.get('reason')})"
        case "recording.started":
            return f"recording started on consent receipt #{d.get('consent_sequence')}"
        case "recording.stopped":
            return f"recording stopped ({d.get('reason')})"
        case "call.callback_requested":
            return f"callback requested ({d.get('reason')})"
        case "call.ended":
            return f"call ended: {d.get('outcome')} after {d.get('duration_s')} s"
    if kind.startswith("transfer."):
        parts = [f"transfer {kind.split('.', 1)[1]}"]
        if d.get("destination_id"):
            parts.append(f"to {d['destination_id']}")
        if d.get("attempt"):
            parts.append(f"attempt {d['attempt']}")
        if d.get("reason"):
            parts.append(f"reason {d['reason']}")
        if d.get("sip_status"):
            parts.append(f"SIP {d['sip_status']}")
        if d.get("detail") and kind == "transfer.failed":
            parts.append(f"({d['detail']})")
        if kind == "transfer.queued":
            wait = d.get("estimated_wait_s")
            parts.append(f"position {d.get('position')}" + (f", ~{wait:g} s" if wait else ""))
        if d.get("final"):
            parts.append("(final)")
        return " ".join(parts)
    return kind


def render(report: Report) -> str:
    """The whole report as text."""
    out = [f"Scenario: {report.scenario}", f"Call id:  {report.call_id}", "", "Transcript:"]
    out += [format_line(u) for u in report.transcript]
    out += ["", "Events on the bus:"]
    out += [format_event(e) for e in report.events]
    return "\n".join(out) + "\n" + render_tail(report)


def render_tail(report: Report) -> str:
    """Everything but the transcript and events (which a live run has printed already)."""
    out = ["", "Ledger receipts:"]
    out += [
        f"  #{r.sequence} {r.decision} chain {r.chain_hash[:16]}… (command {r.command_id})"
        for r in report.receipts
    ] or ["  none"]
    out += ["", "Transfers:"]
    for t in report.transfers:
        states = " → ".join(
            s.state + (f"[{s.destination_id}]" if s.destination_id else "") for s in t.steps
        )
        out.append(f"  {t.transfer_id}: {states}")
    if not report.transfers:
        out.append("  none")
    if report.legs or report.transfers_in_progress:
        out.append("  legs after the call (sip-bridge):")
        out += [
            f"    {leg.transfer_id} attempt {leg.attempt} to {leg.destination_id}: {leg.state}"
            + (f" ({leg.ended_by})" if leg.ended_by else "")
            for leg in report.legs
        ]
        if report.transfers_in_progress:
            out.append(f"    still in progress: {report.transfers_in_progress}")
    out += ["", "Recording timeline:"]
    out += [
        f"  +{r.at_s:.3f}s {r.action}: {r.detail}"
        + (f" (receipt #{r.consent_sequence})" if r.consent_sequence else "")
        for r in report.recording
    ] or ["  nothing"]
    if report.audio is not None:
        out += ["", *render_audio(report.audio)]
    out += ["", f"Agents: {' → '.join(report.agents)}", f"Outcome: {report.outcome}", ""]
    out += summary(report)
    return "\n".join(out)


FRAME_S = 0.02
"""The caller's microphone sends 20 ms frames: a shortfall below one frame is rounding."""


def render_audio(audio: AudioView) -> list[str]:
    """Per agent reply, what was played and what was cut; the caller's speech."""
    out = [f"Agent speech as played (audio seconds, ×{audio.speed:g}; ✂ marks the cut):"]
    for r in audio.replies:
        state = "CUT" if r.interrupted else "whole"
        if r.paused:
            state += f", paused {r.paused}×" + (" and resumed" if r.resumed else "")
        rest = ""
        if r.interrupted and r.full and r.full.startswith(r.said):
            rest = " ✂ " + r.full[len(r.said) :].strip()
        elif r.interrupted:
            rest = " ✂"
        out.append(
            f"  +{r.at_s:7.2f}s {r.agent:>14} {r.played_s:5.2f}/{r.pushed_s:5.2f}s {state:<22}│ "
            f"{r.said}{rest}"
        )
    out += ["", "Caller speech:"]
    for c in audio.caller:
        heard = "transcribed" if c.transcribed else "never a turn"
        if c.delivered_s < c.end_s - c.start_s - FRAME_S:
            heard += f", {c.delivered_s:.2f}s reached the session"
        out.append(f"  +{c.start_s:7.2f}-{c.end_s:.2f}s {c.kind:>11} {heard:<44}│ {c.text}")
    out.append(
        f"  {audio.transcriptions} uploads to the recogniser, "
        f"{audio.syntheses} requests to the synthesiser"
    )
    return out


def summary(report: Report) -> list[str]:
    lines = [f"  {'✔' if c.ok else '✘'} {c.name}: {c.detail}" for c in report.checks]
    lines += [f"  ✘ error: {e}" for e in report.errors]
    verdict = "PASSED" if report.ok else "FAILED"
    return [f"Expectations {verdict}:", *lines]


def to_json(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2)
