"""Integrators' own tools read our events and exported schemas: the CloudEvents SDKs,
``jsonschema``, Ajv in strict mode and the AsyncAPI parser (``tests/conformance.py``).

The demo's events are checked the same way at the end of ``test_demo_with_a_model``.
"""

from __future__ import annotations

import json
from pathlib import Path

from nats.aio.client import Client as NATS

from switchboard.contracts import (
    AgentHandedOff,
    CallbackRequested,
    CallEnded,
    CallOutcome,
    CallStarted,
    RecordingStopped,
    RecordingStopReason,
)
from switchboard.contracts.base import Message
from switchboard.contracts.streams import EVENTS
from switchboard.runtime.bus import EventPublisher
from tests.conformance import (
    SCHEMAS,
    StoredEvent,
    event_problems,
    node_check,
    non_portable,
    patterns,
    run_node_checks,
    write_events,
)

SAMPLES: list[Message] = [
    CallStarted(call_id="tp-1", room="room-1", caller_number="+14155550123", trunk="ST_1"),
    AgentHandedOff(call_id="tp-1", from_agent="greeter", to_agent="billing", reason="bill"),
    CallbackRequested(call_id="tp-1", reason="no human free", number="+14155550123"),
    RecordingStopped(call_id="tp-1", reason=RecordingStopReason.CALL_ENDED),
    CallEnded(call_id="tp-1", outcome=CallOutcome.CALLBACK, duration_s=42.5),
]


async def _published(nc: NATS) -> list[StoredEvent]:
    """The samples through the one publish path, read back from the stream."""
    js = nc.jetstream()
    publisher = EventPublisher(js, source="voice/test")
    out = []
    for payload in SAMPLES:
        await publisher.publish(payload)
    for seq in range(1, len(SAMPLES) + 1):
        msg = await js.get_msg(EVENTS.name, seq)
        assert msg.data is not None
        out.append(StoredEvent(dict(msg.headers or {}), msg.data))
    return out


def test_every_pattern_in_the_exported_documents_is_portable() -> None:
    found = 0
    for name in ("messages.schema.json", "asyncapi.json"):
        for pattern in patterns(json.loads((SCHEMAS / name).read_text())):
            found += 1
            assert non_portable(pattern) is None, (name, pattern, non_portable(pattern))
    assert found >= 10


def test_the_portability_check_refuses_lookaround_and_python_anchors() -> None:
    assert non_portable(r"^[a-z]+(?!\n)$") is not None
    assert non_portable(r"^[a-z]+\Z") is not None
    assert non_portable(r"^(a)\1$") is not None
    assert non_portable(r"^\+[1-9][0-9]{1,14}$") is None


async def test_published_events_are_cloudevents_that_match_the_exported_schema(
    nc: NATS,
) -> None:
    events = await _published(nc)
    assert len(events) == len(SAMPLES)
    for event in events:
        assert event_problems(event) == [], event.body


async def test_the_tools_catch_an_event_that_breaks_the_contract(nc: NATS) -> None:
    good = (await _published(nc))[0]
    body = json.loads(good.body)
    national = {**body, "data": {**body["data"], "caller_number": "4155550123"}}
    assert any("data:" in p for p in event_problems(StoredEvent(good.headers, _dump(national))))
    newer = {**body, "type": "io.switchboard.call.started.v2"}
    assert event_problems(StoredEvent(good.headers, _dump(newer)))
    no_time = {k: v for k, v in body.items() if k != "time"}
    no_time["time"] = "yesterday"
    assert event_problems(StoredEvent(good.headers, _dump(no_time)))
    assert event_problems(StoredEvent({"Nats-Msg-Id": "x"}, good.body)) == ["Content-Type is None"]


async def test_node_tools_compile_the_schema_strictly_and_parse_asyncapi_cleanly(
    nc: NATS, node_checks: tuple[str, Path], tmp_path: Path
) -> None:
    node, workdir = node_checks
    events = write_events(await _published(nc), tmp_path / "events.jsonl")
    summary = run_node_checks(workdir, node, events)
    assert summary["events"] == len(SAMPLES)
    assert summary["problems"] == 0
    assert summary["definitions"] > 50
    # And they would say so: a national number and a missing header are both caught.
    good = json.loads(events.read_text().splitlines()[0])
    body = json.loads(good["body"])
    body["data"]["caller_number"] = "4155550123"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"headers": {}, "body": json.dumps(body)}) + "\n")
    refused = node_check(workdir, node, bad)
    assert refused.returncode == 1
    assert "Content-Type is undefined" in refused.stderr
    assert "caller_number" in refused.stderr


def _dump(body: object) -> bytes:
    return json.dumps(body).encode()
