"""One trace per call: a span over the whole call that its requests and events continue.

The call's tasks (the agent session's, the clients') start while the span is current, so
every request to the ledger, the router and the bridge and every event carries its trace
context through NATS headers: the services' spans become its children and one call is
one trace. Without a tracer provider the span is a no-op and nothing is propagated.
"""

from __future__ import annotations

from opentelemetry import trace

from switchboard.runtime import telemetry
from switchboard.voice.state import CallInfo

CALL_SPAN = "voice.call"


def call_span(info: CallInfo) -> trace.Span:
    """A started span for the call; the caller makes it current and ends it."""
    # The call id is an opaque job id; the caller's number and words never go on spans.
    return telemetry.tracer().start_span(
        CALL_SPAN,
        kind=trace.SpanKind.SERVER,
        attributes={"switchboard.call_id": info.call_id},
    )
