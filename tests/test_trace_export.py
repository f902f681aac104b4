"""One call is one trace, exported over OTLP by every process it touched.

The backends run through their entry points and the voice side of a scripted call runs as
``python -m switchboard.simulation run-scenario``, all with ``SB_TRACE_EXPORTER=otlp`` and
the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a local OTLP/HTTP receiver that
decodes the protobuf export requests. The call's root span is the voice worker's; the
ledger's, the router's and the bridge's spans are its children across NATS.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from switchboard.testing.otlp import CallTrace, OtlpReceiver, ReceivedSpan, trace_of
from switchboard.voice.tracing import CALL_SPAN
from tests.stack import Stack, start_stack

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "a_consent_billing_manager_transfer.toml"
BACKENDS = {"consent", "escalation", "sip-bridge"}
EXPORT_BOUND_S = 30.0


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def otlp_env(receiver: OtlpReceiver) -> dict[str, str]:
    # A short batch delay (a standard SDK variable) so spans arrive while the test waits.
    return {
        "SB_TRACE_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


@pytest.fixture
def traced_stack(tmp_path: Path, receiver: OtlpReceiver) -> Iterator[Stack]:
    stack = start_stack(tmp_path, extra_env=otlp_env(receiver))
    try:
        yield stack
    finally:
        codes = {name: proc.stop() for name, proc in stack.services.items()}
        stack.nats.stop()
        assert all(code == 0 for code in codes.values()), (codes, stack.logs())


def complete(spans: list[ReceivedSpan]) -> CallTrace | None:
    found = trace_of(spans, "voice", CALL_SPAN)
    if found is None or not {child for _, child in found.crossings} >= BACKENDS:
        return None
    return found


def test_one_call_is_one_trace_across_voice_ledger_router_and_bridge(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.simulation", "run-scenario", str(SCENARIO), "--json"],
        env={**traced_stack.env_for_subprocess(), **otlp_env(receiver)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = msgspec.json.decode(done.stdout)
    assert report["ok"], report["checks"]

    spans = receiver.wait_for(lambda s: complete(s) is not None, EXPORT_BOUND_S)
    call = complete(spans)
    assert call is not None, sorted({(s.service, s.name) for s in spans})
    (root,) = [s for s in call.spans if s.name == CALL_SPAN]
    assert root.parent_span_id == ""  # the call starts the trace
    assert call.services >= {"voice", *BACKENDS}
    # Each backend's span hangs under a voice span: the context crossed NATS.
    assert {("voice", backend) for backend in BACKENDS} <= call.crossings
