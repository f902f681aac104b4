"""Consent decisions of a call: to the ledger, and the recording gate acts on the receipt."""

from __future__ import annotations

from switchboard.contracts.base import new_id, utcnow
from switchboard.contracts.consent import ConsentDecision, RecordConsent
from switchboard.voice.call import Call


async def record(call: Call, decision: ConsentDecision, excerpt: str | None) -> bool:
    """Record a decision in the ledger and let the gate act on the receipt.

    Returns whether a receipt came back.
    """
    state = call.state
    policy = state.policy
    assert policy is not None, "the consent policy is fetched before the call starts"
    command = RecordConsent(
        call_id=state.call_id,
        decision=decision,
        jurisdiction=policy.jurisdiction,
        mode=policy.mode,
        notice_version=policy.notice_version,
        command_id=new_id(),
        decided_at=utcnow(),
        caller_number=state.info.caller_number,
        transcript_excerpt=excerpt or None,
        language=state.info.language,
    )
    if decision is not ConsentDecision.REVOKED:
        state.consent = decision
    receipt = await call.ports.consent.record(command)
    if receipt is not None:
        state.consent_sequence = receipt.receipt.sequence
    await call.ports.gate.apply(receipt)
    return receipt is not None


async def revoke(call: Call, excerpt: str) -> None:
    """The caller withdrew consent: recording stops now; the ledger entry follows."""
    call.state.consent = ConsentDecision.REVOKED
    await call.ports.gate.revoke_now()
    call.spawn(record(call, ConsentDecision.REVOKED, excerpt))
