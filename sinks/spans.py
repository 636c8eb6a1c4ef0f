"""One span per batch written, continuing the trace contexts the records carry.

The batch span's parent is the context of the first record that has one; every distinct
context in the batch (up to ``MAX_LINKS``) is a link, so each reading's trace reaches the
write that stored it. Uses the plain OpenTelemetry API: spans go wherever the process's
provider sends them (nowhere without one).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context

from sentio_iot.sinks.writer import SinkRecord

MAX_LINKS = 128
CONTEXT_HEADERS = ("traceparent", "tracestate")


def record_contexts(records: Sequence[SinkRecord], limit: int = MAX_LINKS) -> list[Context]:
    """The distinct trace contexts in the records' headers, in order, at most ``limit``."""
    seen: set[tuple[bytes | None, ...]] = set()
    contexts: list[Context] = []
    for record in records:
        if not record.headers:
            continue
        found = tuple(value for name, value in record.headers if name in CONTEXT_HEADERS)
        if not found or found in seen:
            continue
        seen.add(found)
        carrier = {
            name: value.decode("latin-1")
            for name, value in record.headers
            if name in CONTEXT_HEADERS and value is not None
        }
        contexts.append(propagate.extract(carrier))
        if len(contexts) >= limit:
            break
    return contexts


def batch_span(tracer: trace.Tracer, backend: str, records: Sequence[SinkRecord]) -> trace.Span:
    """A started span for writing ``records`` (the caller ends it)."""
    contexts = record_contexts(records)
    links = []
    for context in contexts:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    parent = contexts[0] if contexts else None
    return tracer.start_span(
        f"write {backend}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.batch.message_count": len(records),
            "sentio.sink": backend,
        },
    )
