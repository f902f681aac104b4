"""Each call's timeline as a CRM sees it: every event of the call, in stream order, with
what it means in a few words (who handled it, what was decided, what was promised)."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from switchboard.contracts.envelope import CloudEvent, MalformedEvent, read_event

MAX_CALLS = 1000
"""Calls kept in memory; the oldest are dropped first (a demo, not a database)."""


def _money(minor: int | None, currency: str | None) -> str:
    if minor is None:
        return ""
    return f"{minor / 100:.2f} {currency or ''}".strip()


def describe(kind: str, data: Any) -> str:
    """A few words on one event; never personal data (no numbers, emails, summaries).

    A caller is named by reference (``caller_ref``: the ledger's pseudonym, the same on each
    of their calls until erased); their number travels sealed and is not opened here."""
    d: dict[str, Any] = msgspec.to_builtins(data) if isinstance(data, msgspec.Struct) else {}
    match kind:
        case "call.started":
            return _caller(d)
        case "call.callback_requested":
            return f"{d.get('reason')}, {_caller(d)}"
        case "call.ended":
            return f"outcome {d.get('outcome')}"
        case "agent.handed_off":
            return f"{d.get('from_agent')} → {d.get('to_agent')}"
        case "consent.recorded":
            receipt = d.get("receipt") or {}
            return f"{d.get('decision')} (ledger #{receipt.get('sequence')})"
        case "escalation.decided":
            return f"{d.get('target')}" + (" (worker fallback)" if d.get("fallback") else "")
        case "transfer.failed":
            return f"{d.get('reason')}" + (" (final)" if d.get("final") else "")
        case "case.refund_requested" | "case.credit_granted":
            authority = d.get("authority") or {}
            limit = _money(authority.get("limit_minor"), authority.get("currency"))
            return (
                f"{_money(d.get('amount_minor'), d.get('currency'))} by {d.get('agent')} under "
                f"{authority.get('rule')} (limit {limit}), ref {d.get('reference')}"
            )
        case "case.order_placed":
            return (
                f"{d.get('product_id')} {_money(d.get('amount_minor'), d.get('currency'))} by "
                f"{d.get('agent')} under {(d.get('authority') or {}).get('rule')}, "
                f"ref {d.get('reference')}"
            )
        case "case.ticket_opened":
            return f"{d.get('topic')} by {d.get('agent')}, ref {d.get('reference')}"
    return ""


def _caller(d: dict[str, Any]) -> str:
    if d.get("withheld"):
        return "caller withheld (ledger unreachable)"
    ref = d.get("caller_ref")
    return f"caller {ref}" if ref else "caller unknown"


@dataclass(frozen=True, slots=True)
class Entry:
    time: dt.datetime
    kind: str
    what: str


@dataclass
class Timelines:
    """Every call's entries, in the order the events were consumed."""

    calls: OrderedDict[str, list[Entry]] = field(default_factory=OrderedDict)
    event_ids: set[tuple[str, str]] = field(default_factory=set)
    """The CloudEvents identities (``source``, ``id``) of the events already on a timeline:
    a redelivered or re-published copy is not added twice."""

    def add(self, body: bytes) -> Entry | None:
        """Add one CloudEvent; None when it is a duplicate, of a type (or version) these
        contracts do not know, or cannot be read."""
        try:
            read = read_event(body)
        except MalformedEvent:
            return None
        if read is None:
            return None
        event, payload = read
        identity = (event.source, event.id)
        if identity in self.event_ids:
            return None
        self.event_ids.add(identity)
        kind = _kind(event)
        entry = Entry(event.time, kind, describe(kind, payload))
        self.calls.setdefault(event.subject, []).append(entry)
        self.calls.move_to_end(event.subject)
        while len(self.calls) > MAX_CALLS:
            self.calls.popitem(last=False)
        return entry

    def render(self) -> str:
        lines = []
        for call_id, entries in self.calls.items():
            lines.append(f"Call {call_id}")
            for e in entries:
                lines.append(f"  {e.time:%H:%M:%S.%f}"[:-3] + f"  {e.kind:<24} {e.what}".rstrip())
        return "\n".join(lines) + ("\n" if lines else "")


def _kind(event: CloudEvent) -> str:
    # io.switchboard.<domain>.<name>.v1 → <domain>.<name>
    parts = event.type.split(".")
    return ".".join(parts[2:4]) if len(parts) >= 5 else event.type
