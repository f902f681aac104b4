"""The transfer journal in its KV bucket (finding 9), on the test's provisioned server."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NATS
from nats.micro import add_service

from switchboard.contracts.subjects import Owner
from switchboard.contracts.transfer import TransferMode
from switchboard.sip_bridge.journal import JournalEntry
from switchboard.sip_bridge.journal_kv import open_journal


def entry(transfer_id: str, owner: str = "gone", ended: str = "") -> JournalEntry:
    return JournalEntry(
        call_id="call-1",
        transfer_id=transfer_id,
        owner=owner,
        room="room-1",
        caller_identity="caller",
        mode=TransferMode.WARM,
        consult_room="room-1-consult-abc",
        ring_timeout_s=20.0,
        ended=ended,
    )


async def test_only_transfers_in_progress_are_listed_and_an_ended_one_is_read_by_id(
    nc: NATS,
) -> None:
    journal = await open_journal(nc, nc.jetstream())
    await journal.save(entry("t-running"))
    await journal.save(entry("t-done"))
    await journal.save(entry("t-done", ended="failed"))
    assert [c.entry.transfer_id for c in await journal.active()] == ["t-running"]
    done = await journal.load("t-done")
    assert done is not None
    assert done.entry.ended == "failed"
    assert await journal.load("t-unknown") is None


async def test_one_claim_wins_and_a_running_owner_is_alive(nc: NATS) -> None:
    journal = await open_journal(nc, nc.jetstream())
    await journal.save(entry("t-1"))
    (claim,) = await journal.active()
    assert await journal.claim(claim, "bridge-b")
    assert not await journal.claim(claim, "bridge-c")  # read before b's claim: stale
    now = await journal.load("t-1")
    assert now is not None
    assert now.entry.owner == "bridge-b"
    assert msgspec.structs.replace(now.entry, owner="gone") == claim.entry
    service = await add_service(nc, name=Owner.SIP_BRIDGE.value, version="0.0.1")
    try:
        assert await journal.owner_alive(service.id)
        assert not await journal.owner_alive("no-such-instance")
    finally:
        await service.stop()
