"""OpenTelemetry tracing for every worker: one call at start-up, spans to Kafka as OTLP.

    configure_tracing(config, "sentio-streams")   # once, before the worker builds its clients

installs an SDK :class:`TracerProvider` (resource ``service.name``; parent-based ratio
sampling) with a :class:`BatchSpanProcessor` whose exporter follows ``tracing.exporter``:

- ``kafka`` (default): each export batch becomes one OTLP protobuf
  ``ExportTraceServiceRequest`` message on the catalog topic ``otlp-spans``, the convention
  of the OpenTelemetry Collector's Kafka exporter (encoding ``otlp_proto``), so a Collector
  can read the topic as well as ``sentio sink tempo`` can;
- ``otlp_http``: the same bytes POSTed to ``tracing.otlp_endpoint``;
- ``none``: nothing is installed (context still travels in headers).

Code that makes spans uses the plain OpenTelemetry API (``trace.get_tracer(__name__)``).
The Tempo sink does not export its own spans to Kafka: they would come back to it.
Kafka headers carry W3C ``traceparent``/``tracestate``: :func:`context_from_headers` and
:func:`headers_from_span` turn one into the other.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx
from confluent_kafka import KafkaException, Producer
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from sentio_iot import __version__
from sentio_iot.config import SentioConfig
from sentio_iot.kafka import producer_config
from sentio_iot.schemas.catalog import spec
from sentio_iot.settings.tracing import TracingSettings

log = logging.getLogger(__name__)

TRACE_HEADERS = ("traceparent", "tracestate")
TEMPO_SINK_SERVICE = "sentio-sink-tempo"
SHUTDOWN_FLUSH_S = 5.0
MAX_MESSAGE_BYTES = 900_000  # under the broker's default 1 MB message limit
# OTLP SpanFlags: bit 8 says whether the parent's remoteness is known, bit 9 that it is remote.
HAS_IS_REMOTE = 0x100
IS_REMOTE = 0x200
# By name: the SDK counts kinds from INTERNAL=0, OTLP from UNSPECIFIED=0.
SPAN_KINDS = {kind: trace_pb2.Span.SpanKind.Value(f"SPAN_KIND_{kind.name}") for kind in SpanKind}
STATUS_CODES = {
    code: trace_pb2.Status.StatusCode.Value(f"STATUS_CODE_{code.name}") for code in StatusCode
}


# -- set-up ----------------------------------------------------------------------------------


def configure_tracing(config: SentioConfig, service_name: str) -> TracerProvider | None:
    """Install the global tracer provider for this worker; None when nothing is exported."""
    settings = config.tracing
    if not settings.enabled or settings.exporter == "none":
        log.info("tracing: not exported (tracing.enabled/exporter)")
        return None
    if settings.exporter == "kafka" and service_name == TEMPO_SINK_SERVICE:
        log.info("tracing: the tempo sink does not put its own spans on the topic it reads")
        return None
    provider = tracer_provider(settings, service_name, span_exporter(config))
    trace.set_tracer_provider(provider)
    log.info(
        "tracing: %s as %s, sampling %.3g", settings.exporter, service_name, settings.sampling_ratio
    )
    return provider


def tracer_provider(
    settings: TracingSettings, service_name: str, exporter: SpanExporter
) -> TracerProvider:
    """An SDK provider (not installed globally) exporting through ``exporter`` in batches."""
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "sentio",
            "service.version": __version__,
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio))
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.export_interval_s * 1000,
            max_export_batch_size=settings.max_export_batch_size,
            export_timeout_millis=settings.export_timeout_s * 1000,
        )
    )
    return provider


def span_exporter(config: SentioConfig) -> SpanExporter:
    settings = config.tracing
    if settings.exporter == "otlp_http":
        return OtlpHttpSpanExporter(settings.otlp_endpoint, settings.export_timeout_s)
    return KafkaSpanExporter(config)


# -- context in Kafka headers ----------------------------------------------------------------

HeaderPairs = Iterable[tuple[str, bytes | str | None]]


def context_from_headers(headers: HeaderPairs | None) -> Context:
    """The trace context that Kafka headers carry (an empty context when they carry none)."""
    carrier: dict[str, str] = {}
    for name, value in headers or ():
        if name in TRACE_HEADERS and value:
            carrier[name] = value.decode("latin-1") if isinstance(value, bytes) else value
    return propagate.extract(carrier)


def headers_from_span(span: trace.Span | None = None) -> list[tuple[str, bytes]]:
    """``traceparent`` (and ``tracestate``) of ``span`` (default: the current span) as headers."""
    carrier: dict[str, str] = {}
    target = span if span is not None else trace.get_current_span()
    propagate.inject(carrier, context=trace.set_span_in_context(target))
    return [(name, value.encode()) for name, value in carrier.items()]


# -- exporters -------------------------------------------------------------------------------


class KafkaSpanExporter(SpanExporter):
    """Each export: one ``ExportTraceServiceRequest`` message (no key) on ``otlp-spans``."""

    def __init__(self, config: SentioConfig, topic: str | None = None) -> None:
        self.topic = topic or spec("otlp-spans").topic(config.topics)
        self.timeout_s = config.tracing.export_timeout_s
        # Not idempotent: a lost span batch is acceptable, a stalled worker is not.
        self._producer = Producer(
            producer_config(
                config.kafka,
                **{
                    "enable.idempotence": False,
                    "acks": 1,
                    "linger.ms": 50,
                    "message.timeout.ms": int(self.timeout_s * 1000),
                    "client.id": f"{config.kafka.client_id}-spans",
                },
            )
        )
        self.failed_messages = 0
        self._failing = 0  # failed deliveries since the last good one
        self._topic_checked = False
        self._topic_missing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._topic_checked:
            self._check_topic()
        if self._topic_missing:
            return SpanExportResult.FAILURE
        try:
            for payload in encoded_requests(spans):
                self._producer.produce(self.topic, payload, on_delivery=self._delivered)
            self._producer.poll(0)
        except (BufferError, KafkaException) as exc:
            log.warning("%d span(s) not exported to %s: %s", len(spans), self.topic, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _check_topic(self) -> None:
        """Once, in the exporting thread: without the topic every export would wait and fail."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=min(self.timeout_s, 5.0))
        except KafkaException as exc:
            log.debug("cannot check topic %s yet: %s", self.topic, exc)
            return  # Kafka away: try again at the next export
        self._topic_checked = True
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None:
            self._topic_missing = True
            log.warning(
                "topic %s does not exist: spans are not exported (create it: sentio topics apply)",
                self.topic,
            )

    def _delivered(self, error: Any, _message: Any) -> None:
        # One line per outage, not one per batch: spans are lost while Kafka is away.
        if error is not None:
            self.failed_messages += 1
            self._failing += 1
            if self._failing == 1:
                log.warning("span batches are not delivered to %s: %s", self.topic, error)
        elif self._failing:
            log.info("span batches reach %s again (%d lost)", self.topic, self._failing)
            self._failing = 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return int(self._producer.flush(timeout_millis / 1000)) == 0

    def shutdown(self) -> None:
        # Bounded: a worker stopping while Kafka is away must not hang on its spans.
        left = int(self._producer.flush(min(self.timeout_s, SHUTDOWN_FLUSH_S)))
        if left:
            log.warning("%d span batch(es) not delivered to %s at shutdown", left, self.topic)


class OtlpHttpSpanExporter(SpanExporter):
    """POSTs each export as OTLP/HTTP protobuf (runs in the batch processor's thread)."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self.endpoint = endpoint
        self._client = httpx.Client(
            timeout=timeout_s, headers={"Content-Type": "application/x-protobuf"}
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            for payload in encoded_requests(spans):
                response = self._client.post(self.endpoint, content=payload)
                if response.status_code >= 300:
                    log.warning(
                        "%s answered %d: %s",
                        self.endpoint,
                        response.status_code,
                        response.text[:300],
                    )
                    return SpanExportResult.FAILURE
        except httpx.HTTPError as exc:
            log.warning("%d span(s) not exported to %s: %s", len(spans), self.endpoint, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._client.close()


# -- OTLP protobuf encoding ------------------------------------------------------------------


def encoded_requests(spans: Sequence[ReadableSpan]) -> list[bytes]:
    """Serialized requests holding ``spans``, split in halves until each fits a message."""
    if not spans:
        return []
    payload = encode_request(spans).SerializeToString()
    if len(payload) <= MAX_MESSAGE_BYTES or len(spans) == 1:
        return [payload]
    middle = len(spans) // 2
    return encoded_requests(spans[:middle]) + encoded_requests(spans[middle:])


def encode_request(spans: Iterable[ReadableSpan]) -> ExportTraceServiceRequest:
    """Spans grouped by resource, then by instrumentation scope, as OTLP defines."""
    grouped: dict[Resource, dict[Any, list[ReadableSpan]]] = defaultdict(lambda: defaultdict(list))
    for span in spans:
        grouped[span.resource][span.instrumentation_scope].append(span)
    request = ExportTraceServiceRequest()
    for resource, scopes in grouped.items():
        resource_spans = request.resource_spans.add(
            resource=ProtoResource(attributes=key_values(resource.attributes)),
            schema_url=resource.schema_url,
        )
        for scope, scope_members in scopes.items():
            scope_spans = resource_spans.scope_spans.add()
            if scope is not None:
                scope_spans.scope.CopyFrom(
                    InstrumentationScope(name=scope.name, version=scope.version or "")
                )
                scope_spans.schema_url = scope.schema_url or ""
            scope_spans.spans.extend(encode_span(span) for span in scope_members)
    return request


def encode_span(span: ReadableSpan) -> trace_pb2.Span:
    context = span.context
    assert context is not None
    parent = span.parent
    flags = int(context.trace_flags) | HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= IS_REMOTE
    status = span.status
    return trace_pb2.Span(
        trace_id=context.trace_id.to_bytes(16, "big"),
        span_id=context.span_id.to_bytes(8, "big"),
        trace_state=context.trace_state.to_header() if context.trace_state else "",
        parent_span_id=parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        flags=flags,
        name=span.name,
        kind=SPAN_KINDS[span.kind],
        start_time_unix_nano=span.start_time or 0,
        end_time_unix_nano=span.end_time or 0,
        attributes=key_values(span.attributes),
        dropped_attributes_count=span.dropped_attributes,
        events=[
            trace_pb2.Span.Event(
                time_unix_nano=event.timestamp,
                name=event.name,
                attributes=key_values(event.attributes),
            )
            for event in span.events
        ],
        dropped_events_count=span.dropped_events,
        links=[encode_link(link.context, link.attributes) for link in span.links],
        dropped_links_count=span.dropped_links,
        status=trace_pb2.Status(
            code=STATUS_CODES[status.status_code], message=status.description or ""
        ),
    )


def encode_link(context: SpanContext, attributes: Mapping[str, Any] | None) -> trace_pb2.Span.Link:
    return trace_pb2.Span.Link(
        trace_id=context.trace_id.to_bytes(16, "big"),
        span_id=context.span_id.to_bytes(8, "big"),
        trace_state=context.trace_state.to_header() if context.trace_state else "",
        attributes=key_values(attributes),
        flags=int(context.trace_flags) | HAS_IS_REMOTE | (IS_REMOTE if context.is_remote else 0),
    )


def key_values(attributes: Mapping[str, Any] | None) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in (attributes or {}).items()]


def any_value(value: Any) -> AnyValue:
    # bool before int: bool is an int in Python, not in OTLP.
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, Sequence):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    return AnyValue(string_value=str(value))
