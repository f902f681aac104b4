"""The ledger's operations: append decisions (idempotent on command id), look records
up, erase a caller, sign checkpoints, verify. Blocking; the service runs it on one
database thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from switchboard.consent.ledger.chain import (
    ChainRecord,
    StoredRecord,
    format_time,
    link,
    parse_time,
)
from switchboard.consent.ledger.sealing import (
    KEY_BYTES,
    NONCE_BYTES,
    SUBJECT_BYTES,
    Entropy,
    LedgerSecret,
    Personal,
    SealError,
    SubjectCipher,
    event_key,
    new_subject,
    unseal,
)
from switchboard.consent.ledger.signing import CheckpointSigner
from switchboard.consent.ledger.store import DeadLetter, LedgerStore, SubjectKey
from switchboard.consent.ledger.verify import verify_records
from switchboard.contracts.base import utcnow
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
_RANDOM_PER_RECORD = KEY_BYTES + SUBJECT_BYTES + 2 * NONCE_BYTES
"""At most: a new person's key, pseudonym and key-wrap nonce, and the record's nonce."""


class QueryError(ValueError):
    """A query the ledger cannot answer as asked (the message says why)."""


class KeyErased(LookupError):
    """The caller's key does not exist (erased, or never made): a sealed value of theirs
    cannot be opened."""


class CheckpointRefused(QueryError):
    """A checkpoint asked for too soon after the last one."""


class Appended(msgspec.Struct, frozen=True):
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
        command.source.value,
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
    """Per-person keys used by one append: found, or created in the same transaction.
    Each person's key is unwrapped (or made) once per append, however many records."""

    def __init__(
        self, secret: LedgerSecret, found: dict[str, SubjectKey], now: str, entropy: Entropy
    ) -> None:
        self._secret = secret
        self._found = found
        self._entropy = entropy
        self.created: list[SubjectKey] = []
        self._ciphers: dict[str, tuple[str, SubjectCipher]] = {}
        self._now = now

    def get(self, ref: str) -> tuple[str, SubjectCipher]:
        """(pseudonym, cipher) for ``ref``."""
        ready = self._ciphers.get(ref)
        if ready is not None:
            return ready
        known = self._found.get(ref)
        if known is None:
            key = self._secret.new_key(self._entropy)
            wrapped = self._secret.wrap(key, ref, self._entropy)
            known = SubjectKey(ref, new_subject(self._entropy), wrapped, self._now)
            self.created.append(known)
        else:
            key = self._secret.unwrap(known.wrapped, ref)
        ready = self._ciphers[ref] = (known.subject, SubjectCipher(key))
        return ready


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
        # Work that needs no database is done before the transaction (it holds the lock).
        prepared = [(c, _personal(c)) for c in commands]
        refs = [
            self.secret.subject_ref(c.caller_number, c.call_id) if p is not None else None
            for c, p in prepared
        ]
        command_ids = list(dict.fromkeys(c.command_id for c in commands))
        # Keys of every caller in the batch (also of repeats, which do not use them): the
        # reads then go out together, before we know which commands are repeats.
        wanted = sorted({r for r in refs if r is not None})
        with self.store.write() as tx:
            basis = tx.read_for_append(command_ids, wanted)
            seq, head = basis.head
            existing = basis.existing
            entropy = Entropy(len(commands) * _RANDOM_PER_RECORD)
            keys = _Keys(self.secret, basis.keys, now, entropy)
            outcomes: list[Outcome] = []
            fresh: list[StoredRecord] = []
            for (command, personal), ref in zip(prepared, refs, strict=True):
                prior = existing.get(command.command_id)
                if prior is not None:
                    outcomes.append(self._repeat(command, prior))
                    continue
                subject: str | None = None
                sealed: bytes | None = None
                if personal is not None and ref is not None:
                    subject, cipher = keys.get(ref)
                    sealed = cipher.seal(command.command_id, personal, entropy)
                stored = link(self._record(command, seq + 1, now, subject, sealed), head)
                seq, head = stored.seq, stored.hash
                existing[command.command_id] = stored
                fresh.append(stored)
                outcomes.append(Appended(command, stored, duplicate=False))
            tx.insert(keys.created, fresh)
        return outcomes

    def _repeat(self, command: RecordConsent, prior: StoredRecord) -> Outcome:
        if _chained_fields(command) == _stored_fields(prior.record):
            return Appended(command, prior, duplicate=True)
        return Refused(
            command,
            f"Command id reused with different content; sequence {prior.seq} keeps the first.",
        )

    @staticmethod
    def _record(
        command: RecordConsent, seq: int, now: str, subject: str | None, sealed: bytes | None
    ) -> ChainRecord:
        return ChainRecord(
            seq=seq,
            command_id=command.command_id,
            call_id=command.call_id,
            decision=command.decision.value,
            jurisdiction=command.jurisdiction,
            mode=command.mode.value,
            notice_version=command.notice_version,
            language=command.language,
            source=command.source.value,
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

    # -- event keys ---------------------------------------------------------------------

    def caller_key(self, caller_number: str | None, call_id: str) -> tuple[str, bytes]:
        """(pseudonym, event key) of the caller (of the call without a number), making the
        caller's key on first use. The same key as their consent records, so one erasure
        destroys both."""
        ref = self.secret.subject_ref(caller_number, call_id)
        known = self.store.subject_key(ref)  # most callers: no write transaction
        if known is None:
            with self.store.write() as tx:
                found = tx.read_for_append([], [ref]).keys
                now = format_time(self.clock())
                keys = _Keys(self.secret, found, now, Entropy(_RANDOM_PER_RECORD))
                keys.get(ref)
                tx.insert(keys.created, [])
            known = keys.created[0] if keys.created else found[ref]
        return known.subject, event_key(self.secret.unwrap(known.wrapped, ref))

    def event_key_of(self, subject: str) -> bytes:
        """The event key of the caller with pseudonym ``subject``; ``KeyErased`` if gone."""
        key = self.store.subject_keys_for([subject]).get(subject)
        if key is None:
            raise KeyErased("The caller's key no longer exists; the value cannot be opened.")
        return event_key(self.secret.unwrap(key.wrapped, key.ref))

    # -- checkpoints and verification ---------------------------------------------------

    def checkpoint(self) -> LedgerCheckpoint:
        """Sign the current head and store the checkpoint."""
        if self.signer is None:
            raise QueryError("This ledger has no signing key.")
        seq, head = self.store.head()
        checkpoint = self.signer.sign(seq, head.hex(), self.clock())
        self.store.insert_checkpoint(checkpoint)
        return checkpoint

    def checkpoint_on_request(self, min_interval: dt.timedelta) -> LedgerCheckpoint:
        """A checkpoint of the head for whoever asks, bounded: the last one again when
        nothing was appended since, else a new one unless the last is younger than
        ``min_interval`` (``CheckpointRefused``). Each checkpoint is a row every verify
        reads, so asking in a loop must not add rows."""
        last = self.last_checkpoint()
        seq, head = self.store.head()
        if last is not None and (last.sequence, last.head_hash) == (seq, head.hex()):
            return last
        if last is not None and self.clock() - last.created_at < min_interval:
            raise CheckpointRefused(
                "A checkpoint was signed less than "
                f"{min_interval.total_seconds():g} s ago; ask again later."
            )
        return self.checkpoint()

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
