"""The corpus through live calls: every phrasing of revocation stops recording with a ledger
record, and the near misses neither escalate nor revoke.

Each utterance is said in its own text-mode call on the real agent graph (rules brain,
in-test backends on a real nats-server), after the caller granted consent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from switchboard.contracts.consent import ConsentDecision
from switchboard.testing import eventually
from switchboard.testing.fake_backends import Backends

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "screening.tsv"
NEAR_MISS_SECTIONS = ("near misses",)


def _rows() -> list[tuple[str, bool, str, str]]:
    """(label, revokes, text, section) for every corpus line."""
    rows = []
    section = ""
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            if line.strip("# ").strip():
                section = line.strip("# ").strip().lower()
            continue
        if line.strip():
            label, revokes, text = line.split("\t")
            rows.append((label, revokes == "1", text, section))
    return rows


async def _granted(start_call: Any) -> Any:
    h = await start_call()
    await h.session.run(user_input="Yes, that's fine.")
    assert h.call.ports.gate.recording
    return h


async def test_every_revocation_in_the_corpus_stops_recording_with_a_ledger_record(
    backends: Backends, start_call: Any
) -> None:
    revocations = [text for label, revokes, text, _ in _rows() if revokes and label == "none"]
    assert len(revocations) >= 90
    kept: list[str] = []
    for text in revocations:
        h = await _granted(start_call)
        await h.session.run(user_input=text)
        if h.call.ports.gate.recording:
            kept.append(text)
            continue
        call_id: str = h.call.call_id

        def revoked(call_id: str = call_id) -> bool:
            return any(
                c.call_id == call_id and c.decision is ConsentDecision.REVOKED
                for c in backends.ledger.commands
            )

        await eventually(revoked, message=f"a revocation record for {text!r}")
    assert kept == [], f"still recording after: {kept}"


async def test_near_misses_neither_escalate_nor_revoke_in_a_call(
    backends: Backends, start_call: Any
) -> None:
    near = [
        text
        for label, revokes, text, section in _rows()
        if label == "none" and not revokes and "near miss" in section
    ]
    assert len(near) >= 40
    wrong: list[str] = []
    for text in near:
        h = await _granted(start_call)
        await h.session.run(user_input=text)
        if not h.call.ports.gate.recording or backends.router.requests:
            wrong.append(text)
        backends.router.requests.clear()
    assert wrong == []
