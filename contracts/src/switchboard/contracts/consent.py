"""Consent policy queries, consent commands, the ledger receipt and the audit queries."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

from switchboard.contracts.base import (
    CallId,
    Identifier,
    LanguageTag,
    Message,
    PersonalText,
    PhoneNumber,
    ShortText,
)


class ConsentMode(enum.StrEnum):
    """How consent is obtained for a jurisdiction."""

    ASK = "ask"
    """All-party-consent places and whenever the jurisdiction is unknown: ask and wait."""
    NOTIFY = "notify"
    """A notice suffices (one-party consent): tell the caller, record unless they object."""


class ConsentDecision(enum.StrEnum):
    """What the caller answered."""

    GRANTED = "granted"
    DENIED = "denied"
    UNCLEAR = "unclear"
    """No clear answer: treated as not granted."""
    REVOKED = "revoked"
    """Consent withdrawn after it was given (mid-call)."""


RECEIPT_TIMEOUT_S = 3.0
"""How long the voice worker waits for a decision's receipt before the call goes on
without recording (its ``SB_CONSENT_RECEIPT_TIMEOUT_S``); the ledger sizes how soon a
crashed replica's commands are redelivered from the same figure."""


class ConsentSource(enum.StrEnum):
    """Who took the decision down; the ledger records nothing from anyone else."""

    VOICE = "voice"
    """The voice worker, from the caller's own words."""


Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")]

# The patterns below are portable (no lookaround: RE2 and ECMAScript read them as Python
# does). Python's ``$`` also matches before one trailing newline, which the JSON Schema's
# dialect does not; the ledger refuses control characters in these fields on its own.
JURISDICTION_PATTERN = r"^(unknown|[A-Z]{2}(-[A-Z0-9]{1,3})?)$"
NOTICE_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

Jurisdiction = Annotated[
    str,
    msgspec.Meta(
        pattern=JURISDICTION_PATTERN,
        max_length=7,
        description="ISO 3166-1 alpha-2 country, with an ISO 3166-2 subdivision when known "
        "(``US-CA``), or ``unknown``.",
    ),
]
NoticeVersion = Annotated[
    str,
    msgspec.Meta(
        pattern=NOTICE_VERSION_PATTERN,
        max_length=160,
        description="The notice and language played (``ask-2025-01:de``): letters, digits "
        "and ``.``, ``_``, ``:``, ``-``.",
    ),
]
AwareTime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
"""A time with its offset: a naive time would be read in whatever zone the reader is in."""


class ConsentPolicyQuery(Message):
    """Ask the ledger which consent policy applies to a caller (``sb.consent.policy``)."""

    call_id: CallId
    caller_number: PhoneNumber | None = None
    trunk: Identifier | None = None
    """The SIP trunk the call came in on; deployments can pin a jurisdiction per trunk."""
    language: LanguageTag = "en"


class ConsentPolicy(Message):
    """The consent policy for one call: what to say and whether to ask."""

    call_id: CallId
    jurisdiction: Jurisdiction
    """ISO 3166 country, with the US state when known (``US-CA``); ``unknown`` otherwise."""
    mode: ConsentMode
    notice_text: ShortText
    notice_version: NoticeVersion
    ai_disclosure: ShortText
    language: LanguageTag = "en"
    fallback: bool = False
    """True when the ledger did not answer in time and the worker used the strictest policy."""


class RecordConsent(Message):
    """Command: append one consent decision to the ledger.

    Published to the consent command stream with ``command_id`` as ``Nats-Msg-Id``; the
    ledger applies each ``command_id`` exactly once.

    ``command_id`` and ``decided_at`` are required: the producer sets them once per
    decision and republishes the same values. Defaults made on decode would differ on
    every delivery, turning a redelivery into a second record.
    """

    call_id: CallId
    decision: ConsentDecision
    jurisdiction: Jurisdiction
    mode: ConsentMode
    notice_version: NoticeVersion
    command_id: Identifier
    """Chosen once per decision by the producer (``new_id()``); the idempotency key."""
    decided_at: AwareTime
    """When the caller answered, chosen once by the producer (``utcnow()``). The ledger
    dead-letters a time far from its own clock (see the consent service's README)."""
    caller_number: PhoneNumber | None = None
    transcript_excerpt: PersonalText | None = None
    """The caller's words that were taken as the answer."""
    language: LanguageTag = "en"
    source: ConsentSource = ConsentSource.VOICE


class ConsentReceipt(Message):
    """Proof that a decision is in the ledger: its sequence and the chain hash after it."""

    sequence: int
    chain_hash: Sha256Hex
    recorded_at: dt.datetime


class ConsentRecorded(Message):
    """Event: the ledger appended a consent decision. Recording may start only on this."""

    call_id: CallId
    command_id: Identifier
    decision: ConsentDecision
    jurisdiction: Jurisdiction
    mode: ConsentMode
    notice_version: NoticeVersion
    receipt: ConsentReceipt


class ConsentRevoked(Message):
    """Event: a caller withdrew consent; recording must stop."""

    call_id: CallId
    command_id: Identifier
    receipt: ConsentReceipt


MAX_SEQUENCE = 2**63 - 1
"""The largest ledger sequence (a signed 64-bit integer in both databases)."""

LedgerSequence = Annotated[int, msgspec.Meta(ge=1, le=MAX_SEQUENCE)]


class VerifyLedger(Message):
    """Ask the ledger to verify its chain and checkpoints (``sb.consent.verify``)."""

    from_sequence: LedgerSequence = 1


class LedgerVerification(Message):
    """Result of a chain verification."""

    ok: bool
    records_checked: int
    head_sequence: int
    head_hash: str
    checkpoints_checked: int = 0
    first_bad_sequence: int | None = None
    problem: ShortText | None = None


class LookupConsent(Message):
    """Find consent records by call or by caller (``sb.consent.lookup``)."""

    call_id: CallId | None = None
    caller_number: PhoneNumber | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class ConsentRecordView(Message):
    """One ledger record as auditors see it."""

    sequence: int
    command_id: Identifier
    call_id: CallId
    decision: ConsentDecision
    jurisdiction: ShortText
    mode: ConsentMode
    notice_version: Identifier
    decided_at: dt.datetime
    recorded_at: dt.datetime
    chain_hash: Sha256Hex
    caller_number: PhoneNumber | None = None
    transcript_excerpt: PersonalText | None = None
    erased: bool = False
    """True when the caller's personal data was erased; the chain still verifies."""


class ConsentRecords(Message):
    """Reply to ``LookupConsent``."""

    records: list[ConsentRecordView]


class EraseCaller(Message):
    """Destroy one caller's key so their personal data in the ledger becomes unreadable."""

    caller_number: PhoneNumber


class CallerErased(Message):
    """Reply to ``EraseCaller``."""

    records_affected: int


class CreateCheckpoint(Message):
    """Ask the ledger to sign a checkpoint of its head now (``sb.consent.checkpoint``)."""


class LedgerCheckpoint(Message):
    """A signed statement of the ledger head (Ed25519 over sequence, hash and time)."""

    sequence: int
    head_hash: str
    created_at: dt.datetime
    key_id: Identifier
    signature: str
    """Base64 Ed25519 signature."""
