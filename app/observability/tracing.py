"""Traces across the hops: one paid message is one trace through api, processor, saga and projector.

OpenTelemetry spans, joined by W3C trace context (`traceparent`, `tracestate`)
carried in Kafka record headers:

    api        command <type>        the HTTP request's command, until its answer
      processor  decide <type>       its decision and the Kafka transaction that stores it
        saga       saga <event type>   a step the saga takes on an event (a charge, a delivery)
          processor  decide <type>     …the saga's command, and so on
        projector  project <event type> the read models' batch that applied the event

Exported over OTLP/HTTP to `EVENTLINE_OTLP_ENDPOINT` (a collector's base URL,
`/v1/traces` is added) with the process's role as `service.name`. Off by
default: then nothing here creates a span or a header, and each helper returns
at its first line (`enabled` is False), so tracing costs nothing when off.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

from app.config import Settings

log = logging.getLogger(__name__)

HEADERS = ("traceparent", "tracestate")
Headers = Sequence[tuple[str, bytes]]

enabled = False
tracer: Tracer = trace.get_tracer("eventline")


def setup_tracing(settings: Settings, service: str) -> None:
    """Export this process's spans as `service` when an OTLP endpoint is configured."""
    global enabled, tracer
    if not settings.otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service, "service.namespace": settings.namespace})
    provider = TracerProvider(resource=resource, sampler=sampler(settings.trace_sample_ratio))
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("eventline")
    enabled = True
    log.info("tracing: spans of %s exported to %s", service, endpoint)


def sampler(ratio: float) -> Sampler:
    """A trace's root (the API's request) is kept with probability `ratio`, by its trace id; every later
    span follows its parent's decision, which the Kafka headers carry: no hop keeps part of a dropped trace."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    return ParentBased(TraceIdRatioBased(ratio))


def shutdown_tracing() -> None:
    """Flush what is buffered (a process that exits must not lose its last spans)."""
    provider = trace.get_tracer_provider()
    if enabled and hasattr(provider, "shutdown"):
        provider.shutdown()


def headers_of(span: Span | None = None) -> list[tuple[str, bytes]]:
    """The trace context to carry in a Kafka record's headers: of `span`, or of the current span."""
    if not enabled:
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=None if span is None else trace.set_span_in_context(span))
    return [(name, value.encode()) for name, value in carrier.items() if name in HEADERS]


def context_of(headers: Headers | None) -> Context | None:
    """The trace context a record's headers carry (None when tracing is off or they carry none)."""
    if not enabled or not headers:
        return None
    carrier = {name: value.decode("latin-1") for name, value in headers if name in HEADERS and value is not None}
    return propagate.extract(carrier) if carrier else None


Attributes = Mapping[str, str | int]


@contextlib.contextmanager
def span(
    name: str, attributes: Attributes, *, parent: Context | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[Span | None]:
    """A span, current inside the block, child of `parent` (a record's context) or of the current one."""
    if not enabled:
        yield None
        return
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as current:
        yield current


def start(name: str, parent: Context | None, attributes: Attributes) -> Span | None:
    """A span that outlives a block (a decision that ends with its transaction's commit)."""
    if not enabled:
        return None
    return tracer.start_span(name, context=parent, attributes=attributes)


def record(name: str, parent: Context | None, start_ns: int, end_ns: int, attributes: Attributes) -> None:
    """A span that already happened (the read models' batch that applied an event of `parent`'s trace)."""
    if enabled and parent is not None:
        tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes).end(end_time=end_ns)
