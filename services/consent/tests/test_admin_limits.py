"""The ledger's admin requests cannot exhaust it (issue 7, finding 10): checkpoints are
bounded, verifications run a bounded number at a time and say ``unavailable`` beyond
that, and sequence numbers are bounded in the contract."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from consent_testkit import publish, running, settings_for, subscribe_events
from nats.aio.client import Client as NATS

from switchboard.consent import app as consent_app
from switchboard.consent.ledger.open import open_store
from switchboard.contracts.consent import (
    CreateCheckpoint,
    LedgerCheckpoint,
    LedgerVerification,
    RecordConsent,
    VerifyLedger,
)
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.subjects import CONSENT_CHECKPOINT, CONSENT_VERIFY
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import RequestFailed, request

Command = Callable[..., RecordConsent]


async def test_checkpoints_on_request_are_bounded(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    """Finding 10 (issue 7): ``sb.consent.checkpoint`` signed a new checkpoint per
    request (15,733 in 13 s made verify 11x slower). Now nothing appended since the last
    one answers that one again, and a new one within the minimum interval is refused."""
    settings = settings_for(nats_server.url, tmp_path, checkpoint_min_interval_s=3600.0)
    async with running(settings, nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        await publish(js, command(call_id="cp-1"))
        await waiter.wait_for(1)
        first = await request(nc, CONSENT_CHECKPOINT, CreateCheckpoint(), LedgerCheckpoint, 2)
        assert first.sequence == 1
        for _ in range(50):
            again = await request(nc, CONSENT_CHECKPOINT, CreateCheckpoint(), LedgerCheckpoint, 2)
            assert again == first  # the same signed statement, no new row
        await publish(js, command(call_id="cp-2"))
        await waiter.wait_for(2)
        with pytest.raises(RequestFailed) as refused:
            await request(nc, CONSENT_CHECKPOINT, CreateCheckpoint(), LedgerCheckpoint, 2)
        assert refused.value.error.code is ErrorCode.REJECTED
        assert "3600" in refused.value.error.message
    store = open_store(settings.ledger_db, create=False)
    try:
        # The one on request and the one written at shutdown (the head had moved).
        assert [c.sequence for c in store.checkpoints()] == [1, 2]
    finally:
        store.close()


async def test_verifications_beyond_the_limit_answer_busy_at_once(
    nats_server: NatsServer,
    nc: NATS,
    tmp_path: Path,
    command: Command,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 10 (issue 7): verify requests ran one at a time behind each other (16 at
    once: the last reply after 71 s). Now one runs at a time and the others are answered
    ``unavailable`` straight away, while it runs."""
    release = threading.Event()
    real = consent_app._verifier

    def held(db: str, keys: dict[str, bytes]) -> Callable[[int], LedgerVerification]:
        verify = real(db, keys)

        def slow(from_sequence: int) -> LedgerVerification:
            release.wait(30)
            return verify(from_sequence)

        return slow

    monkeypatch.setattr(consent_app, "_verifier", held)
    async with running(settings_for(nats_server.url, tmp_path), nc):
        body = json.dumps({}).encode()
        try:
            first = asyncio.create_task(nc.request(CONSENT_VERIFY, body, timeout=10))
            # The others, while the first is held: each is answered without waiting.
            others = await asyncio.gather(
                *(nc.request(CONSENT_VERIFY, body, timeout=2) for _ in range(15))
            )
            for reply in others:
                assert reply.headers is not None
                assert reply.headers["Nats-Service-Error-Code"] == "503"
                assert json.loads(reply.data)["code"] == ErrorCode.UNAVAILABLE.value
            assert not first.done()
        finally:
            release.set()
        result = LedgerVerification(**json.loads((await first).data))
        assert result.ok
        again = await request(nc, CONSENT_VERIFY, VerifyLedger(), LedgerVerification, 5)
        assert again.ok


@pytest.mark.parametrize("from_sequence", [2**63, 2**64, 10**30])
async def test_a_sequence_beyond_64_bits_is_a_bad_request(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, from_sequence: int
) -> None:
    """Finding 10 (issue 7): ``from_sequence`` >= 2**64 answered ``internal`` with a
    traceback each time; the contract bounds it."""
    async with running(settings_for(nats_server.url, tmp_path), nc):
        body = json.dumps({"from_sequence": from_sequence}).encode()
        reply = await nc.request(CONSENT_VERIFY, body, timeout=2)
        assert reply.headers is not None
        assert reply.headers["Nats-Service-Error-Code"] == "400"
        error = json.loads(reply.data)
        assert (error["code"], error["field"]) == ("bad_request", "$.from_sequence")
        top = await request(
            nc, CONSENT_VERIFY, VerifyLedger(from_sequence=2**63 - 1), LedgerVerification, 5
        )
        assert top.ok
