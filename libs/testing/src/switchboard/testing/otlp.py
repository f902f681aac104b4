"""A tiny OTLP/HTTP trace receiver: what a collector would get, decoded for assertions.

Accepts ``POST /v1/traces`` with a protobuf ``ExportTraceServiceRequest`` (gzip or not),
as the ``opentelemetry-exporter-otlp-proto-http`` exporter sends it, and keeps every span
with its service name. Used by the trace test and by the deployment check, which points
the containers' ``OTEL_EXPORTER_OTLP_ENDPOINT`` at it.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One exported span, ids in hex as the W3C ``traceparent`` writes them."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    """Empty for a root span."""
    kind: int


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = next(
            (
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            ),
            "",
        )
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                    )
                )
    return spans


class OtlpReceiver:
    """An OTLP/HTTP endpoint on ``host``:``port`` (0: a free port) in a thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._spans: list[ReceivedSpan] = []
        self._changed = threading.Condition()
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != TRACES_PATH:
                    self.send_error(404)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._add(decode(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # Exporters post often; the test output stays readable.

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _add(self, spans: list[ReceivedSpan]) -> None:
        with self._changed:
            self._spans.extend(spans)
            self.requests += 1
            self._changed.notify_all()

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._changed:
            return list(self._spans)

    def wait_for(
        self, done: Callable[[list[ReceivedSpan]], bool], timeout: float
    ) -> list[ReceivedSpan]:
        """Block until ``done(spans)`` holds (checked on every export) or ``timeout``
        passes; returns the spans either way."""
        with self._changed:
            self._changed.wait_for(lambda: done(self._spans), timeout)
            return list(self._spans)


@dataclass(frozen=True, slots=True)
class CallTrace:
    """One trace rooted at a given span, and where it crossed process boundaries."""

    trace_id: str
    spans: list[ReceivedSpan]
    crossings: set[tuple[str, str]]
    """(parent's service, child's service) for every parent/child pair across services."""

    @property
    def services(self) -> set[str]:
        return {s.service for s in self.spans}


def trace_of(spans: list[ReceivedSpan], service: str, root: str) -> CallTrace | None:
    """The trace of the last root span named ``root`` from ``service``, if one arrived."""
    roots = [s for s in spans if s.service == service and s.name == root]
    if not roots:
        return None
    trace_id = roots[-1].trace_id
    in_trace = [s for s in spans if s.trace_id == trace_id]
    owner = {s.span_id: s.service for s in in_trace}
    crossings = {
        (owner[s.parent_span_id], s.service)
        for s in in_trace
        if s.parent_span_id in owner and owner[s.parent_span_id] != s.service
    }
    return CallTrace(trace_id=trace_id, spans=in_trace, crossings=crossings)
