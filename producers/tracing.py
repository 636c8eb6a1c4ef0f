"""W3C trace context for every published message, cheap enough for every reading.

A message carries the context of the span active where it was emitted (a connector's poll
span) when there is one; otherwise the context of a ``publish`` span that covers one
window of publishing (one second by default). The headers are built once per span and
reused, so a message costs a context lookup, not a span.

Spans go wherever the application's OpenTelemetry SDK sends them. Without one, a private
SDK provider with no processor still gives valid trace ids for the headers and exports
nothing.
"""

from __future__ import annotations

import time
from functools import cache

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider

Headers = list[tuple[str, str | bytes | None]]  # as confluent-kafka takes them


@cache
def _private_provider() -> TracerProvider:
    return TracerProvider()


def tracer_provider() -> trace.TracerProvider:
    """The application's SDK provider when it set one, else a private one that exports nothing."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        return provider
    return _private_provider()


def context_headers(span: trace.Span) -> Headers:
    """``traceparent`` (and ``tracestate`` when present) of ``span`` as Kafka headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return [(name, value.encode()) for name, value in carrier.items()]


class PublishTracing:
    """Trace headers for published messages; not thread-safe (the publisher holds its lock)."""

    def __init__(
        self,
        protocol: str,
        *,
        window_s: float = 1.0,
        provider: trace.TracerProvider | None = None,
    ) -> None:
        self.protocol = protocol
        self.window_s = window_s
        self._tracer = (provider or tracer_provider()).get_tracer("sentio_iot.producers")
        self._span: trace.Span | None = None
        self._span_headers: Headers = []
        self._window_ends = 0.0
        self._messages = 0
        self._caller_span_id = 0
        self._caller_headers: Headers = []

    def headers(self) -> Headers:
        """Headers for the next message (shared between messages: do not modify)."""
        caller = trace.get_current_span().get_span_context()
        if caller.is_valid:
            if caller.span_id != self._caller_span_id:
                self._caller_span_id = caller.span_id
                self._caller_headers = context_headers(trace.get_current_span())
            return self._caller_headers
        now = time.monotonic()
        if self._span is None or now >= self._window_ends:
            self._end_span()
            self._span = self._tracer.start_span(
                f"publish {self.protocol}",
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "sentio.protocol": self.protocol,
                },
            )
            self._span_headers = context_headers(self._span)
            self._window_ends = now + self.window_s
        self._messages += 1
        return self._span_headers

    def close(self) -> None:
        self._end_span()

    def _end_span(self) -> None:
        if self._span is not None:
            self._span.set_attribute("messaging.batch.message_count", self._messages)
            self._span.end()
            self._span = None
            self._messages = 0
