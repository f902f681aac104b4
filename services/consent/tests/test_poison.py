"""Commands that used to stop ingest for every call (issue 7), and what happens when the
ingest loop dies anyway: the service says so and stops, it never answers as if fine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from consent_testkit import drained, publish, running, settings_for, subscribe_events, wait_ready
from nats.aio.client import Client as NATS

from switchboard.consent import __version__
from switchboard.consent import ingest as ingest_module
from switchboard.consent.app import make_setup, policy_source
from switchboard.consent.ledger.ledger import verify_store
from switchboard.consent.ledger.open import open_store
from switchboard.contracts.consent import RecordConsent
from switchboard.contracts.subjects import Owner, consent_record_subject
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.service import ServiceFailed, run_service
from switchboard.testing import eventually

Command = Callable[..., RecordConsent]


def _poison_bodies(command: Command) -> list[bytes]:
    good = msgspec.json.encode(command(call_id="poison", transcript_excerpt="MARKER"))
    invalid_utf8 = good.replace(b"MARKER", b"MA\xff\xfeRKER")
    assert invalid_utf8 != good
    return [
        invalid_utf8,  # UnicodeDecodeError, not a msgspec error
        b'{"call_id": "poison", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # RecursionError
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    ]


async def test_undecodable_and_deeply_nested_commands_are_dead_lettered_and_ingest_goes_on(
    nats_server: NatsServer, nc: NATS, tmp_path: Path, command: Command
) -> None:
    """Finding 1 (issue 7): invalid UTF-8 inside a JSON string and nesting 5,000 deep
    raised past ``decode_command`` and killed the ingest task silently; every later
    command went unrecorded, across restarts. Now both are dead letters and the next
    valid command gets its receipt."""
    settings = settings_for(nats_server.url, tmp_path)
    bodies = _poison_bodies(command)
    async with running(settings, nc):
        js = nc.jetstream()
        waiter = await subscribe_events(nc)
        for i, body in enumerate(bodies):
            await js.publish(
                consent_record_subject("poison"), body, headers={"Nats-Msg-Id": f"poison-{i}"}
            )
        good = command(call_id="after-poison")
        await publish(js, good)
        [(_, recorded)] = await waiter.wait_for(1)
        assert recorded.command_id == good.command_id
        await drained(js)
    store = open_store(settings.ledger_db, create=False)
    try:
        letters = store.dead_letters(limit=100)
        assert len(letters) == len(bodies)
        reasons = [letter.reason for letter in letters]
        assert all(reason.startswith("Undecodable command") for reason in reasons), reasons
        assert "MARKER" not in " ".join(reasons)
        assert store.head()[0] == 1
        assert verify_store(store, store.signing_keys()).ok
    finally:
        store.close()


async def test_an_ingest_loop_that_dies_is_logged_and_stops_the_service(
    nats_server: NatsServer,
    nc: NATS,
    tmp_path: Path,
    command: Command,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Finding 1 (issue 7): whatever kills the ingest task, the service must not keep
    answering requests as if it were fine. It logs the failure and stops with
    ``ServiceFailed`` (the process exits non-zero and is restarted)."""

    def broken(body: bytes, subject: str) -> object:
        raise RuntimeError("a bug in ingest")

    monkeypatch.setattr(ingest_module, "decode_command", broken)
    settings = settings_for(nats_server.url, tmp_path)
    stop = asyncio.Event()
    policy = policy_source(settings)
    task = asyncio.create_task(
        run_service(
            Owner.CONSENT.value, __version__, settings, make_setup(settings, policy), stop=stop
        )
    )
    try:
        await wait_ready(nc)
        await publish(nc.jetstream(), command(call_id="kills-ingest"))
        with pytest.raises(ServiceFailed, match="ingest"):
            await asyncio.wait_for(task, 15)
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(asyncio.shield(task), 15)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    errors = [line for line in lines if line.get("level") == "ERROR"]
    assert any("ingest stopped" in line["message"] for line in errors), errors
    assert any(line.get("reason") == "consent ingest stopped (RuntimeError)" for line in errors)

    # The service's endpoints are gone with it: nothing answers as if fine.
    async def gone() -> bool:
        try:
            await nc.request("$SRV.PING.consent", b"", timeout=0.3)
        except Exception:
            return True
        return False

    await eventually(gone, message="the failed service to leave the bus")
