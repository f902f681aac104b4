"""The ledger's operations: append decisions (idempotent on command id), look records
up, erase a caller, sign checkpoints, verify. Blocking; the service runs it on one
database thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from switchboard.consent.ledger.chain import (
    ChainRecord,
    StoredRecord,
    format_time,
    link,
    parse_time,
)
from switchboard.consent.ledger.sealing import LedgerSecret, Personal, SealError, seal, unseal
from switchboard.consent.ledger.signing import CheckpointSigner
from switchboard.consent.ledger.store import DeadLetter, LedgerStore, SubjectKey, WriteTx
from switchboard.consent.ledger.verify import verify_records
from switchboard.contracts.base import new_id, utcnow
from switchboard.contracts.consent import (
    ConsentDecision,
    ConsentMode,
    ConsentReceipt,
    ConsentRecordView,
    LedgerCheckpoint,
    LedgerVerification,
    LookupConsent,
    RecordConsent,
)

MAX_DEAD_LETTER_BODY = 64 * 1024


class QueryError(ValueError):
    """A query the ledger cannot answer as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class Appended:
    """A command is in the ledger: just now, or already (``duplicate``)."""

    command: RecordConsent
    stored: StoredRecord
    duplicate: bool

    @property
    def receipt(self) -> ConsentReceipt:
        return receipt_of(self.stored)


@dataclass(frozen=True, slots=True)
class Refused:
    """A command that can never be applied (it goes to the dead-letter table)."""

    command: RecordConsent
    reason: str


Outcome = Appended | Refused


def receipt_of(stored: StoredRecord) -> ConsentReceipt:
    return ConsentReceipt(
        sequence=stored.seq,
        chain_hash=stored.hash.hex(),
        recorded_at=parse_time(stored.record.recorded_at),
    )


def _chained_fields(command: RecordConsent) -> tuple[str, ...]:
    return (
        command.call_id,
        command.decision.value,
        command.jurisdiction,
        command.mode.value,
        command.notice_version,
        command.language,
        command.source,
        format_time(command.decided_at),
    )


def _stored_fields(record: ChainRecord) -> tuple[str, ...]:
    return (
        record.call_id,
        record.decision,
        record.jurisdiction,
        record.mode,
        record.notice_version,
        record.language,
        record.source,
        record.decided_at,
    )


def _personal(command: RecordConsent) -> Personal | None:
    if command.caller_number is None and command.transcript_excerpt is None:
        return None
    return Personal(
        caller_number=command.caller_number, transcript_excerpt=command.transcript_excerpt
    )


class _Keys:
    """Per-person keys used by one append: found, or created in the same transaction."""

    def __init__(self, tx: WriteTx, secret: LedgerSecret, refs: Sequence[str], now: str) -> None:
        self._secret = secret
        self.found = tx.subject_keys(refs)
        self.created: list[SubjectKey] = []
        self._plain: dict[str, bytes] = {}
        self._now = now

    def get(self, ref: str) -> tuple[str, bytes]:
        """(pseudonym, key) for ``ref``."""
        known = self.found.get(ref)
        if known is None:
            key = self._secret.new_key()
            known = SubjectKey(ref, new_id(), self._secret.wrap(key, ref), self._now)
            self.found[ref] = known
            self.created.append(known)
            self._plain[ref] = key
        if ref not in self._plain:
            self._plain[ref] = self._secret.unwrap(known.wrapped, ref)
        return known.subject, self._plain[ref]


class Ledger:
    """The consent ledger over one store."""

    def __init__(
        self,
        store: LedgerStore,
        secret: LedgerSecret,
        signer: CheckpointSigner | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.secret = secret
        self.signer = signer
        self.clock = clock
        if signer is not None:
            store.add_signing_key(signer.key_id, signer.public_key)

    # -- append -------------------------------------------------------------------------

    def append(self, commands: Sequence[RecordConsent]) -> list[Outcome]:
        """Append ``commands`` in one transaction; each command id is applied once."""
        now = format_time(self.clock())
        with self.store.write() as tx:
            seq, head = tx.head()
            existing = tx.records_by_command(list({c.command_id for c in commands}))
            refs = {
                self.secret.subject_ref(c.caller_number, c.call_id)
                for c in commands
                if c.command_id not in existing and _personal(c) is not None
            }
            keys = _Keys(tx, self.secret, sorted(refs), now)
            outcomes: list[Outcome] = []
            fresh: list[StoredRecord] = []
            for command in commands:
                prior = existing.get(command.command_id)
                if prior is not None:
                    outcomes.append(self._repeat(command, prior))
                    continue
                stored = link(self._record(command, seq + 1, now, keys), head)
                seq, head = stored.seq, stored.hash
                existing[command.command_id] = stored
                fresh.append(stored)
                outcomes.append(Appended(command, stored, duplicate=False))
            tx.insert_subject_keys(keys.created)
            tx.insert_records(fresh)
        return outcomes

    def _repeat(self, command: RecordConsent, prior: StoredRecord) -> Outcome:
        if _chained_fields(command) == _stored_fields(prior.record):
            return Appended(command, prior, duplicate=True)
        return Refused(
            command,
            f"Command id reused with different content; sequence {prior.seq} keeps the first.",
        )

    def _record(self, command: RecordConsent, seq: int, now: str, keys: _Keys) -> ChainRecord:
        subject: str | None = None
        sealed: bytes | None = None
        personal = _personal(command)
        if personal is not None:
            subject, key = keys.get(self.secret.subject_ref(command.caller_number, command.call_id))
            sealed = seal(key, command.command_id, personal)
        return ChainRecord(
            seq=seq,
            command_id=command.command_id,
            call_id=command.call_id,
            decision=command.decision.value,
            jurisdiction=command.jurisdiction,
            mode=command.mode.value,
            notice_version=command.notice_version,
            language=command.language,
            source=command.source,
            decided_at=format_time(command.decided_at),
            recorded_at=now,
            subject=subject,
            sealed=sealed,
        )

    # -- dead letters -------------------------------------------------------------------

    def dead_letter(
        self,
        body: bytes,
        reason: str,
        subject: str,
        stream_seq: int | None = None,
        msg_id: str | None = None,
    ) -> int:
        """Keep a command that can never be applied, outside the chain, body encrypted."""
        kept = body[:MAX_DEAD_LETTER_BODY]
        return self.store.insert_dead_letter(
            DeadLetter(
                received_at=format_time(self.clock()),
                reason=reason[:1000],
                subject=subject[:256],
                body_sha256=hashlib.sha256(body).hexdigest(),
                body_size=len(body),
                body_sealed=self.secret.seal_dead_letter(kept),
                stream_seq=stream_seq,
                msg_id=msg_id[:256] if msg_id else None,
            )
        )

    # -- queries ------------------------------------------------------------------------

    def lookup(self, query: LookupConsent) -> list[ConsentRecordView]:
        """Records of a call, of a caller, or of a caller on one call."""
        if query.call_id is None and query.caller_number is None:
            raise QueryError("Give call_id, caller_number or both.")
        subject: str | None = None
        if query.caller_number is not None:
            key = self.store.subject_key(self.secret.subject_ref(query.caller_number, ""))
            if key is None:
                return []
            subject = key.subject
        if query.call_id is not None:
            found = self.store.records_by_call(query.call_id, query.limit)
            if subject is not None:
                found = [r for r in found if r.record.subject == subject]
        else:
            assert subject is not None
            found = self.store.records_by_subject(subject, query.limit)
        return self.views(found)

    def views(self, records: Sequence[StoredRecord]) -> list[ConsentRecordView]:
        """Records as auditors see them, personal data opened where the key still exists."""
        subjects = sorted({r.record.subject for r in records if r.record.subject})
        keys = self.store.subject_keys_for(subjects)
        return [self._view(r, keys) for r in records]

    def _view(self, stored: StoredRecord, keys: Mapping[str, SubjectKey]) -> ConsentRecordView:
        r = stored.record
        personal, erased = Personal(), False
        if r.sealed is not None:
            key = keys.get(r.subject or "")
            if key is None:
                erased = True
            else:
                try:
                    plain = self.secret.unwrap(key.wrapped, key.ref)
                    personal = unseal(plain, r.command_id, r.sealed)
                except SealError:
                    erased = True
        return ConsentRecordView(
            sequence=r.seq,
            command_id=r.command_id,
            call_id=r.call_id,
            decision=ConsentDecision(r.decision),
            jurisdiction=r.jurisdiction,
            mode=ConsentMode(r.mode),
            notice_version=r.notice_version,
            decided_at=parse_time(r.decided_at),
            recorded_at=parse_time(r.recorded_at),
            chain_hash=stored.hash.hex(),
            caller_number=personal.caller_number,
            transcript_excerpt=personal.transcript_excerpt,
            erased=erased,
        )

    def erase(self, caller_number: str) -> int:
        """Destroy the caller's key; returns how many records became unreadable."""
        key = self.store.delete_subject_key(self.secret.subject_ref(caller_number, ""))
        if key is None:
            return 0
        return self.store.count_by_subject(key.subject)

    # -- checkpoints and verification ---------------------------------------------------

    def checkpoint(self) -> LedgerCheckpoint:
        """Sign the current head and store the checkpoint."""
        if self.signer is None:
            raise QueryError("This ledger has no signing key.")
        seq, head = self.store.head()
        checkpoint = self.signer.sign(seq, head.hex(), self.clock())
        self.store.insert_checkpoint(checkpoint)
        return checkpoint

    def last_checkpoint(self) -> LedgerCheckpoint | None:
        found = self.store.checkpoints()
        return found[-1] if found else None

    def verify(self, from_sequence: int = 1) -> LedgerVerification:
        return verify_store(self.store, self.trusted_keys(), from_sequence)

    def trusted_keys(self) -> dict[str, bytes]:
        """The ledger's own key when it has one; else the keys recorded in the database."""
        if self.signer is not None:
            return {self.signer.key_id: self.signer.public_key}
        return self.store.signing_keys()


def verify_store(
    store: LedgerStore, public_keys: Mapping[str, bytes], from_sequence: int = 1
) -> LedgerVerification:
    """Verify a store's chain from ``from_sequence`` and all its checkpoints."""
    checkpoints = store.checkpoints()  # before the records: see verify_records
    anchor = store.record(from_sequence - 1) if from_sequence > 1 else None
    start = anchor.seq + 1 if anchor is not None else 1
    return verify_records(store.iter_records(start), checkpoints, public_keys, anchor)
