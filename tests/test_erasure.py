"""Erasure reaches the bus: after ``sb.consent.erase`` no copy of a call's events reveals
the caller's number or words.

Real services as subprocesses, a real nats-server with the generated permissions, a
webhook receiver on 127.0.0.1. One call asks for a person, every destination fails and
the caller accepts a callback (scenario e2: ``call.callback_requested`` with the number and
the context's summary). Before erasure the CRM of record opens the sealed fields through
``sb.consent.unseal``; afterwards opening fails with ``erased``, and neither a stored event,
the demo CRM's timeline, a webhook body nor a log holds the number or the words in any
encoding tried.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import tomllib
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.js.api import DeliverPolicy

from switchboard.contracts import streams
from switchboard.contracts.call import CallbackRequested, CallStarted
from switchboard.contracts.consent import CallerErased, EraseCaller
from switchboard.contracts.envelope import decode_event
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.sealed import OpenSealed, SealedOpened, restore_fields
from switchboard.contracts.subjects import CONSENT_ERASE, CONSENT_UNSEAL, EVENTS_WILDCARD
from switchboard.ops.permissions import Role
from switchboard.runtime.bus import RequestFailed, request
from switchboard.testing import eventually
from tests.stack import READ_ONLY_CRM, Stack, start_stack
from tests.test_call_flow import run_voice_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "e2_transfer_all_fail_callback.toml"
NUMBER = "+14155550128"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every body it is sent."""

    def __init__(self) -> None:
        bodies = self.bodies = list[bytes]()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:  # no request lines on stderr
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def encodings(secret: str) -> set[bytes]:
    """``secret`` as it could appear in a body: plain, JSON-escaped (also ``\\u``-escaped
    throughout), URL-encoded, hex, and base64 (standard and URL-safe, at each of the three
    alignments it could have inside a longer value)."""
    raw = secret.encode()
    forms = {
        raw,
        json.dumps(secret)[1:-1].encode(),
        "".join(f"\\u{ord(c):04x}" for c in secret).encode(),
        urllib.parse.quote(secret).encode(),
        urllib.parse.quote_plus(secret).encode(),
        raw.hex().encode(),
    }
    for start in range(3):
        aligned = raw[start : start + 3 * ((len(raw) - start) // 3)]
        if len(aligned) >= 6:
            forms.add(base64.b64encode(aligned))
            forms.add(base64.urlsafe_b64encode(aligned))
    return forms


def secrets_of(words: list[str]) -> list[str]:
    """The number in its usual spellings and every phrase the caller said (long enough
    that finding it means it leaked)."""
    national = NUMBER.removeprefix("+1")
    spellings = [NUMBER, NUMBER.removeprefix("+"), national, f"({national[:3]}) {national[3:]}"]
    return spellings + [w for w in words if len(w) >= 10]


def revealing(corpus: dict[str, bytes], secrets: list[str]) -> list[str]:
    """Where a secret appears, as ``place: secret[:6]…`` (never the whole value)."""
    return [
        f"{place}: {secret[:6]}…"
        for secret in secrets
        for form in encodings(secret)
        for place, body in corpus.items()
        if form in body
    ]


async def stored_events(stack: Stack) -> list[bytes]:
    """Every message on SB_EVENTS, read as the CRM user reads (an ordered consumer)."""
    nc = await nats.connect(stack.nats.url, **stack.connect_options(Role.CRM.value))
    try:
        js = nc.jetstream()
        last = (await js.stream_info(streams.EVENTS.name)).state.last_seq
        sub = await js.subscribe(
            EVENTS_WILDCARD,
            stream=streams.EVENTS.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        out: list[bytes] = []
        seq = 0
        while seq < last:
            msg = await sub.next_msg(timeout=10)
            out.append(msg.data)
            seq = msg.metadata.sequence.stream
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def open_as(stack: Stack, user: str, payload: CallbackRequested) -> SealedOpened:
    assert payload.sealed is not None
    nc = await nats.connect(stack.nats.url, **stack.connect_options(user))
    try:
        return await request(nc, CONSENT_UNSEAL, OpenSealed(sealed=payload.sealed), SealedOpened, 3)
    finally:
        await nc.close()


async def erase(stack: Stack) -> CallerErased:
    nc = await nats.connect(stack.nats.url, **stack.connect_options(Role.OPS.value))
    try:
        return await request(nc, CONSENT_ERASE, EraseCaller(caller_number=NUMBER), CallerErased, 5)
    finally:
        await nc.close()


def test_after_erasure_no_event_crm_copy_or_webhook_reveals_the_number_or_words(
    tmp_path: Path, receiver: Receiver
) -> None:
    stack = start_stack(tmp_path, permissions_on=True, webhook_url=receiver.url)
    try:
        _run(stack, receiver)
    finally:
        codes = {name: proc.stop() for name, proc in stack.services.items()}
        stack.nats.stop()
    assert all(code == 0 for code in codes.values()), codes
    # The demo CRM prints its timelines when it stops: its copy of the call.
    crm_copy = (tmp_path / "logs" / "crm.log").read_bytes()
    assert b"call.callback_requested" in crm_copy, "the CRM recorded the call"
    logs = {p.name: p.read_bytes() for p in (tmp_path / "logs").glob("*.log")}
    assert revealing(logs, secrets_of(_said_words())) == []


def _said_words() -> list[str]:
    turns: list[str] = tomllib.loads(SCENARIO.read_text())["turns"]
    return turns


def _run(stack: Stack, receiver: Receiver) -> None:
    call_id = run_voice_scenario(stack, SCENARIO)["call_id"]

    def delivered() -> list[bytes]:
        ended = [b for b in receiver.bodies if b'"io.switchboard.call.ended.v1"' in b]
        assert ended, "the relay delivers the call's last event"
        return ended

    asyncio.run(eventually(delivered, timeout=30, message="webhooks not delivered"))
    bodies = asyncio.run(stored_events(stack))
    events = [decode_event(b) for b in bodies]
    of_call = [(e, p) for e, p in events if e.subject == call_id]
    (callback,) = [p for _, p in of_call if isinstance(p, CallbackRequested)]
    (started,) = [p for _, p in of_call if isinstance(p, CallStarted)]
    # One reference for the caller on every event that names them; no plain fields.
    assert callback.caller_ref is not None
    assert started.caller_ref == callback.caller_ref
    assert (callback.number, started.caller_number) == (None, None)
    assert callback.context is not None
    assert callback.context.summary == ""
    assert callback.withheld == []

    # Before erasure the CRM of record opens them; a read-only CRM user may not ask.
    opened = asyncio.run(open_as(stack, Role.CRM.value, callback))
    restored = restore_fields(callback, opened.fields)
    assert restored.number == NUMBER
    assert restored.context is not None
    summary = restored.context.summary
    words = [turn for turn in _said_words() if len(turn) >= 10 and turn in summary]
    assert words, "the summary holds the caller's words"
    with pytest.raises(RequestFailed):
        asyncio.run(open_as(stack, READ_ONLY_CRM, callback))

    erased = asyncio.run(erase(stack))
    assert erased.records_affected >= 1  # the call's consent record shares the key

    with pytest.raises(RequestFailed) as refused:
        asyncio.run(open_as(stack, Role.CRM.value, callback))
    assert refused.value.error.code is ErrorCode.ERASED
    assert NUMBER.removeprefix("+") not in refused.value.error.message

    corpus = {f"stored event {i}": body for i, body in enumerate(bodies)}
    corpus |= {f"webhook body {i}": body for i, body in enumerate(receiver.bodies)}
    assert len(receiver.bodies) >= len(of_call), "every event of the call was delivered"
    secrets = [*secrets_of(words), summary]
    assert revealing(corpus, secrets) == []
    # The sealed value is all that is left, and it no longer opens (above); the
    # webhook's copy is the same sealed value.
    webhook_callbacks = [
        p for e, p in map(decode_event, receiver.bodies) if isinstance(p, CallbackRequested)
    ]
    assert [p.sealed for p in webhook_callbacks][:1] == [callback.sealed]
    assert msgspec.json.encode(callback.sealed) in b"".join(bodies)


def test_the_leak_check_finds_the_number_and_words_in_each_encoding() -> None:
    """The check above means something: each way a value could be written is found."""
    words = "Put me through to a human being."
    secrets = secrets_of([words])
    bodies = {
        "plain": json.dumps({"number": NUMBER}).encode(),
        "escaped": "".join(f"\\u{ord(c):04x}" for c in NUMBER).encode(),
        "url": f"to={urllib.parse.quote_plus(words)}".encode(),
        "base64": base64.b64encode(b'{"number":"' + NUMBER.encode() + b'"}'),
        "national": b"call 4155550128 back",
    }
    found = {place.split(":")[0] for place in revealing(bodies, secrets)}
    assert found == set(bodies)
