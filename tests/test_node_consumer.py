"""The README's Node consumer, run with the official NATS client as the user ``crm`` against
a nats-server holding the generated permissions: it reads events through its durable
consumer, applies a fact stored twice once, and skips a version it was not built for."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

from nats.js.errors import NotFoundError

from switchboard.contracts import CallStarted, streams
from switchboard.contracts.envelope import EVENTS
from switchboard.runtime.bus import MSG_ID_HEADER, EventPublisher
from switchboard.testing import eventually
from tests.conformance import NODE_CHECKS
from tests.test_permissions import (  # noqa: F401 (fixtures)
    Secured,
    create_streams,
    fallback_decision,
    secured,
    secured_server,
)

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
RUN_TIMEOUT_S = 60
_EXAMPLE = re.compile(r"// README example begins\n(.*?)// README example ends\n", re.S)


def test_the_readme_shows_the_node_consumer_that_is_run_here() -> None:
    match = _EXAMPLE.search((NODE_CHECKS / "crm_consumer.mjs").read_text())
    assert match is not None
    assert match.group(1) in README


async def test_a_node_crm_applies_each_fact_once_and_skips_an_unknown_version(
    secured: Secured,  # noqa: F811 (the fixture imported above)
    node_checks: tuple[str, Path],
    tmp_path: Path,
) -> None:
    node, workdir = node_checks
    await create_streams(secured)
    types = tmp_path / "types.json"
    types.write_text(json.dumps(sorted(spec.type for spec in EVENTS)))
    crm = await asyncio.create_subprocess_exec(
        node,
        "crm_consumer.mjs",
        str(types),
        "2",
        cwd=workdir,
        env={
            **os.environ,
            "SB_NATS_URL": secured.server.url,
            "SB_NATS_PASSWORD": secured.passwords["crm"],
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert crm.stdout is not None
    assert crm.stderr is not None
    try:
        ops = (await secured.connect("ops")).nc.jetstream()
        # Its consumer takes only events newer than itself (DeliverPolicy.New).
        await eventually(
            lambda: ops.consumer_info(streams.EVENTS.name, "crm"),
            timeout=RUN_TIMEOUT_S,
            message="the Node CRM's durable consumer",
            retry_on=(NotFoundError,),
        )
        voice = await secured.connect("voice")
        js = voice.nc.jetstream()
        publisher = EventPublisher(js)
        started = publisher.encode(CallStarted(call_id="node-1", room="room-1"))[0]
        await js.publish(started.subject, started.body, headers={MSG_ID_HEADER: started.event_id})
        # The same fact stored again past JetStream's duplicate window (another message id).
        await js.publish(started.subject, started.body, headers={MSG_ID_HEADER: "a-late-copy"})
        newer = json.loads(started.body)
        newer |= {"id": "v2-event", "type": newer["type"].replace(".v1", ".v2")}
        await js.publish(started.subject, json.dumps(newer).encode())
        decision = fallback_decision()
        decided = await publisher.publish(decision)
        out, err = await asyncio.wait_for(crm.communicate(), RUN_TIMEOUT_S)
    finally:
        if crm.returncode is None:
            crm.kill()
            await crm.wait()
    assert crm.returncode == 0, err.decode()[-2000:]
    recorded = [json.loads(line) for line in out.decode().splitlines()]
    assert [(r["callId"], r["type"]) for r in recorded] == [
        ("node-1", "io.switchboard.call.started.v1"),
        (decision.call_id, "io.switchboard.escalation.decided.v1"),
    ]
    assert recorded[1]["data"]["decision_id"] == decision.decision_id
    assert decided
    assert await voice.refusals() == []
