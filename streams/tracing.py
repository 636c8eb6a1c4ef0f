"""W3C trace context through the stream agents: continue what a message carries, pass it on.

Each agent processes an event (or a batch) inside a span whose parent is the context found in
the message headers (``traceparent``/``tracestate``, extracted with
``opentelemetry.propagate``); what it emits carries that span's context. A batch span is the
child of its first traced message and links up to :data:`MAX_LINKS` other contexts, so a
rollup of a thousand readings costs one span, not a thousand.

Spans go wherever the application's OpenTelemetry SDK sends them (service ``sentio-streams``).
Without one, a private SDK provider with no processor still gives valid trace ids for the
headers and exports nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

SERVICE_NAME = "sentio-streams"
MAX_LINKS = 16
_TRACE_HEADERS = ("traceparent", "tracestate")

# Kafka headers as aiokafka/faust give them: a sequence of (name, value) pairs.
RawHeaders = Sequence[tuple[str, bytes | None]]
Headers = list[tuple[str, bytes]]


@cache
def _private_provider() -> TracerProvider:
    return TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))


def tracer() -> trace.Tracer:
    """The app's tracer: the application's SDK provider when it set one, else a private one."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = _private_provider()
    return provider.get_tracer("sentio_iot.streams")


def carrier(headers: RawHeaders | Any) -> dict[str, str]:
    """The trace headers of a message as the text carrier ``propagate.extract`` reads."""
    found: dict[str, str] = {}
    for name, value in headers or ():
        if name in _TRACE_HEADERS and value:
            found[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return found


def context_headers(span: trace.Span) -> Headers:
    """``traceparent`` (and ``tracestate``) of ``span`` as Kafka headers for what it emits."""
    out: dict[str, str] = {}
    propagate.inject(out, context=trace.set_span_in_context(span))
    return [(name, value.encode()) for name, value in out.items()]


@contextmanager
def message_span(agent: str, headers: RawHeaders | Any, **attributes: Any) -> Iterator[trace.Span]:
    """A span for one message, child of the context its headers carry; the current span inside."""
    parent = propagate.extract(carrier(headers))
    with tracer().start_as_current_span(
        f"process {agent}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "sentio.agent": agent, **attributes},
    ) as span:
        yield span


@contextmanager
def batch_span(agent: str, headers_of_messages: Iterable[RawHeaders | Any]) -> Iterator[trace.Span]:
    """A span for a batch: child of its first traced message, linking up to MAX_LINKS others."""
    parent: otel_context.Context | None = None
    links: list[trace.Link] = []
    seen: set[int] = set()
    count = 0
    for headers in headers_of_messages:
        count += 1
        found = carrier(headers)
        if not found or len(links) >= MAX_LINKS:
            continue
        ctx = propagate.extract(found)
        span_context = trace.get_current_span(ctx).get_span_context()
        if not span_context.is_valid or span_context.span_id in seen:
            continue
        seen.add(span_context.span_id)
        if parent is None:
            parent = ctx
        else:
            links.append(trace.Link(span_context))
    with tracer().start_as_current_span(
        f"process {agent} batch",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "sentio.agent": agent,
            "messaging.batch.message_count": count,
        },
    ) as span:
        yield span
