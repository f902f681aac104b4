"""OpenTelemetry setup and W3C trace-context propagation through NATS headers.

There is no official NATS instrumentation, so producers inject the current context into
message headers and consumers start their span from the extracted context. Span names
are subjects with the call id replaced by a placeholder, never personal data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

_configured = False
_provider: TracerProvider | None = None


def setup_tracing(
    service: str, exporter: str = "none", span_exporter: SpanExporter | None = None
) -> None:
    """Install a tracer provider for ``service`` once per process.

    ``exporter`` is ``none``, ``console`` or ``otlp``; tests pass an in-memory
    ``span_exporter``. ``otlp`` sends batches over OTLP/HTTP to the collector named by the
    standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``…_TRACES_ENDPOINT``, with
    ``…_HEADERS``, ``…_CERTIFICATE``, ``…_TIMEOUT``); ``OTEL_RESOURCE_ATTRIBUTES`` adds
    resource attributes. ``service.name`` is always ``service``.
    """
    global _configured, _provider
    if _configured:
        return
    if span_exporter is None and exporter == "none":
        # Without an exporter the SDK would build and drop every span (~40 % of a router
        # request's CPU). The API's no-op tracer still carries an incoming trace context
        # through, so propagation keeps working for services downstream.
        _configured = True
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    elif exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        # Imported here: only processes that export pay for the protobuf modules.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Batched off the request path; ``shutdown_tracing`` flushes what is left.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f"Unknown trace exporter {exporter!r}: none, console or otlp.")
    trace.set_tracer_provider(provider)
    _provider = provider
    _configured = True


def flush_tracing(timeout_s: float = 5.0) -> None:
    """Export the spans queued so far (bounded by ``timeout_s``)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))


def shutdown_tracing(timeout_s: float = 5.0) -> None:
    """Export the spans still queued and stop the exporter (a process's last step).

    Bounded, so an unreachable collector delays a shutdown by ``timeout_s`` at most.
    """
    if _provider is not None:
        _provider.force_flush(int(timeout_s * 1000))
        _provider.shutdown()


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """The Switchboard tracer. Cached: ``get_tracer`` costs tens of µs per call, and the
    proxy it returns follows a provider installed later."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("switchboard")
    return _tracer


def tracing_enabled() -> bool:
    """Whether a real tracer provider is installed (ours or the host application's)."""
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


def inject(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Return ``headers`` with the current trace context added (``traceparent``...)."""
    out = dict(headers or {})
    propagate.inject(out)
    return out


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by a message's headers (empty context if none)."""
    return propagate.extract(dict(headers or {}))


def span_name(subject: str) -> str:
    """A span name for a subject: the call-id token is replaced so names stay low-cardinality
    and carry no identifiers."""
    parts = subject.split(".")
    if len(parts) == 5 and parts[0] == "sb" and parts[1] in {"evt", "cmd"}:
        parts[-1] = "{call_id}"
    return ".".join(parts)


@contextmanager
def consumer_span(
    subject: str,
    headers: Mapping[str, str] | None,
    *,
    operation: str = "process",
    group: str | None = None,
    message_id: str | None = None,
) -> Iterator[trace.Span]:
    """A CONSUMER span continuing the producer's trace, with messaging attributes.

    With no tracer provider installed, no span is built: the producer's context is only
    made current, so events published while handling still carry its trace id.
    """
    if not tracing_enabled():
        token = otel_context.attach(extract(headers))
        try:
            yield trace.get_current_span()
        finally:
            otel_context.detach(token)
        return
    attributes: dict[str, str] = {
        "messaging.system": "nats",
        "messaging.destination.name": span_name(subject),
        "messaging.operation.type": operation,
    }
    if group:
        attributes["messaging.consumer.group.name"] = group
    if message_id:
        attributes["messaging.message.id"] = message_id
    with tracer().start_as_current_span(
        f"{operation} {span_name(subject)}",
        context=extract(headers),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span


def traceparent() -> str | None:
    """The current ``traceparent`` value, for the CloudEvents tracing extension."""
    return inject().get("traceparent")
