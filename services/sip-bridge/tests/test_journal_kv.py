"""The transfer journal in its KV bucket (finding 9), on the test's provisioned server."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client as NATS
from nats.micro import add_service

from switchboard.contracts import streams
from switchboard.contracts.subjects import Owner
from switchboard.contracts.transfer import TransferMode
from switchboard.sip_bridge.journal import JournalEntry
from switchboard.sip_bridge.journal_kv import ACTIVE, open_journal
from switchboard.testing import eventually


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


async def test_ended_transfers_leave_the_listing_within_seconds(nc: NATS) -> None:
    """The sweep reads every stored message under the in-progress prefix, one request
    each: under load, a minute of ended transfers' purge markers made it take 25-70 s."""
    journal = await open_journal(nc, nc.jetstream())
    for i in range(20):
        await journal.save(entry(f"t-{i}"))
        await journal.save(entry(f"t-{i}", ended="connected"))
    js = nc.jetstream()
    in_progress = f"$KV.{streams.TRANSFER_STATE.name}.{ACTIVE}>"

    async def stored_under_prefix() -> int:
        info = await js.stream_info(streams.TRANSFER_STATE.stream, subjects_filter=in_progress)
        return sum((info.state.subjects or {}).values())

    assert await stored_under_prefix() > 0  # the purge markers

    async def cleared() -> bool:
        return await stored_under_prefix() == 0

    await eventually(cleared, timeout=5, message="the markers' expiry")
    assert await journal.active() == []
