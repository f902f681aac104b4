"""Chain verification: walks the records in sequence order and names the first bad one.

Each record is checked three ways: its sequence is the next one (a gap is a deletion),
its hash matches its own content and stored previous hash (an edit), and its stored
previous hash is the hash of the record before it (a break). A break next to records
that are each self-consistent means the earlier one was replaced and re-hashed, or a
record was inserted (the later one then links to the record two back). Signed
checkpoints pin the head hash at their sequence, which catches a rewrite that re-hashed
every record after the change, and a deletion at the end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from switchboard.consent.ledger.chain import GENESIS, StoredRecord, chain_hash
from switchboard.consent.ledger.signing import signature_valid
from switchboard.contracts.consent import LedgerCheckpoint, LedgerVerification


@dataclass(frozen=True, slots=True)
class Problem:
    sequence: int | None
    text: str


@dataclass
class _Walk:
    """The state of a walk: the hashes of the last two records and what was checked."""

    expected: int
    prev_hash: bytes
    prev2_hash: bytes | None
    last_pinned: int
    records: int = 0
    checkpoints: int = 0


def verify_records(
    records: Iterable[StoredRecord],
    checkpoints: Sequence[LedgerCheckpoint],
    public_keys: Mapping[str, bytes],
    anchor: StoredRecord | None = None,
) -> LedgerVerification:
    """Verify ``records`` (ascending sequence) against the chain rules and ``checkpoints``.

    ``anchor`` is the trusted record just before the first one when verifying a suffix.
    Read the checkpoints before the records: records only grow, so every checkpoint read
    first refers to a record the walk will see.
    """
    trusted = [cp for cp in checkpoints if signature_valid(cp, public_keys)]
    untrusted = [cp for cp in checkpoints if not signature_valid(cp, public_keys)]
    start = anchor.seq + 1 if anchor is not None else 1
    walk = _Walk(
        expected=start,
        prev_hash=anchor.hash if anchor is not None else GENESIS,
        prev2_hash=anchor.prev_hash if anchor is not None else None,
        last_pinned=start - 1,
    )
    pins: dict[int, list[LedgerCheckpoint]] = defaultdict(list)
    for cp in trusted:
        if cp.sequence >= start - 1:
            pins[cp.sequence].append(cp)
    problem = _check_pins(walk, pins.pop(start - 1, []), walk.prev_hash)
    for stored in records:
        problem = problem or _check_record(walk, stored)
        problem = problem or _check_pins(walk, pins.pop(stored.seq, []), stored.hash)
        if problem is not None:
            break
        walk.prev2_hash, walk.prev_hash = walk.prev_hash, stored.hash
        walk.expected += 1
        walk.records += 1
    head = walk.expected - 1
    if problem is None and pins:
        beyond = min(pins)
        problem = Problem(
            head + 1,
            f"Record {head + 1} is missing: a signed checkpoint covers sequence {beyond} "
            f"but the ledger ends at {head}.",
        )
    if problem is None and untrusted:
        cp = untrusted[0]
        problem = Problem(
            None,
            f"The checkpoint at sequence {cp.sequence} is not signed by a trusted key "
            f"({cp.key_id}).",
        )
    return LedgerVerification(
        ok=problem is None,
        records_checked=walk.records,
        head_sequence=head,
        head_hash=walk.prev_hash.hex(),
        checkpoints_checked=walk.checkpoints,
        first_bad_sequence=problem.sequence if problem else None,
        problem=problem.text if problem else None,
    )


def _check_record(walk: _Walk, stored: StoredRecord) -> Problem | None:
    p = walk.expected
    if stored.seq != p:
        return Problem(p, f"Record {p} is missing: the next record has sequence {stored.seq}.")
    linked = stored.prev_hash == walk.prev_hash
    consistent = chain_hash(stored.record, stored.prev_hash) == stored.hash
    if not linked and walk.prev2_hash is not None and stored.prev_hash == walk.prev2_hash:
        return Problem(
            p - 1, f"Record {p - 1} was inserted: record {p} was chained to record {p - 2}."
        )
    if not consistent:
        return Problem(p, f"Record {p} does not match its hash: it was edited or moved.")
    if not linked:
        if p == 1:
            return Problem(1, "Record 1 does not start the chain.")
        return Problem(
            p - 1,
            f"Record {p - 1} was replaced after record {p} was chained to it "
            "(edited and re-hashed).",
        )
    return None


def _check_pins(walk: _Walk, pins: list[LedgerCheckpoint], head_hash: bytes) -> Problem | None:
    for cp in pins:
        if cp.head_hash != head_hash.hex():
            first = walk.last_pinned + 1
            return Problem(
                first,
                f"Records {first}..{cp.sequence} are not the ones the checkpoint at sequence "
                f"{cp.sequence} signed: they were rewritten.",
            )
        walk.checkpoints += 1
        walk.last_pinned = cp.sequence
    return None
