"""Tracing set-up: OTLP encoding of SDK spans, sampling, context in Kafka headers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from sentio_iot import tracing
from sentio_iot.config import load_config
from sentio_iot.settings.tracing import TracingSettings
from sentio_iot.tracing import (
    configure_tracing,
    context_from_headers,
    encode_request,
    encoded_requests,
    headers_from_span,
    tracer_provider,
)

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Collected(SpanExporter):
    """Keeps what the batch processor exports (the SDK's own processor, real batching)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def finished_spans(settings: TracingSettings, service: str = "sentio-streams") -> tuple:
    collected = Collected()
    provider = tracer_provider(settings, service, collected)
    return provider, collected


def test_spans_encode_as_otlp_with_parents_kinds_attributes_links_and_status() -> None:
    provider, collected = finished_spans(TracingSettings())
    tracer = provider.get_tracer("sentio_iot.test", "1.2")
    remote = context_from_headers([("traceparent", TRACEPARENT)])
    link_target = trace.get_current_span(remote).get_span_context()
    with tracer.start_as_current_span(
        "process rollups", context=remote, kind=SpanKind.CONSUMER
    ) as parent:
        parent.set_attributes(
            {"flag": True, "count": 7, "ratio": 0.5, "agent": "rollups", "windows": [60, 3600]}
        )
        parent.add_event("late", {"lateness_s": 2.5})
        with tracer.start_as_current_span(
            "write victoriametrics", kind=SpanKind.CLIENT, links=[trace.Link(link_target)]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "503"))
    provider.shutdown()

    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(collected.spans).SerializeToString())
    [resource_spans] = request.resource_spans
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource["service.name"] == "sentio-streams"
    assert resource["service.namespace"] == "sentio"
    [scope_spans] = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("sentio_iot.test", "1.2")
    spans = {span.name: span for span in scope_spans.spans}
    outer, inner = spans["process rollups"], spans["write victoriametrics"]

    assert outer.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert outer.parent_span_id.hex() == "b7ad6b7169203331"
    assert outer.flags == 0x01 | 0x100 | 0x200  # sampled, parent known to be remote
    assert outer.kind == trace_pb2.Span.SPAN_KIND_CONSUMER
    attributes = {kv.key: kv.value for kv in outer.attributes}
    assert attributes["flag"].bool_value is True
    assert attributes["count"].int_value == 7
    assert attributes["ratio"].double_value == 0.5
    assert attributes["agent"].string_value == "rollups"
    assert [v.int_value for v in attributes["windows"].array_value.values] == [60, 3600]
    [event] = outer.events
    assert event.name == "late"
    assert event.attributes[0].value.double_value == 2.5

    assert inner.trace_id == outer.trace_id
    assert inner.parent_span_id == outer.span_id
    assert inner.flags == 0x01 | 0x100  # parent local
    assert inner.kind == trace_pb2.Span.SPAN_KIND_CLIENT
    assert inner.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert inner.status.message == "503"
    [link] = inner.links
    assert (link.trace_id.hex(), link.span_id.hex()) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert 0 < outer.start_time_unix_nano <= inner.start_time_unix_nano
    assert inner.end_time_unix_nano <= outer.end_time_unix_nano


def test_spans_of_two_services_are_two_resource_spans() -> None:
    a, collected_a = finished_spans(TracingSettings(), "sentio-producer")
    b, collected_b = finished_spans(TracingSettings(), "sentio-sink-loki")
    a.get_tracer("x").start_span("poll").end()
    b.get_tracer("y").start_span("write").end()
    a.shutdown()
    b.shutdown()
    request = encode_request(collected_a.spans + collected_b.spans)
    services = [
        next(kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name")
        for rs in request.resource_spans
    ]
    assert services == ["sentio-producer", "sentio-sink-loki"]
    assert [rs.scope_spans[0].spans[0].name for rs in request.resource_spans] == ["poll", "write"]


def test_large_exports_are_split_into_messages_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, collected = finished_spans(TracingSettings())
    tracer = provider.get_tracer("x")
    for n in range(10):
        tracer.start_span(f"span-{n}", attributes={"padding": "x" * 200}).end()
    provider.shutdown()
    whole = encoded_requests(collected.spans)
    assert len(whole) == 1
    monkeypatch.setattr(tracing, "MAX_MESSAGE_BYTES", len(whole[0]) // 3)
    parts = encoded_requests(collected.spans)
    assert 3 < len(parts) < 10  # halved until each part fits, not one message per span
    names = []
    for part in parts:
        assert len(part) <= len(whole[0]) // 3
        request = ExportTraceServiceRequest.FromString(part)
        names += [s.name for s in request.resource_spans[0].scope_spans[0].spans]
    assert names == [f"span-{n}" for n in range(10)]


def test_sampling_is_parent_based() -> None:
    provider, collected = finished_spans(TracingSettings(sampling_ratio=0.0))
    tracer = provider.get_tracer("x")
    tracer.start_span("new trace: not sampled").end()
    sampled_parent = context_from_headers([("traceparent", TRACEPARENT)])
    tracer.start_span("continues a sampled trace", context=sampled_parent).end()
    unsampled = TRACEPARENT[:-2] + b"00"
    tracer.start_span(
        "continues an unsampled trace", context=context_from_headers([("traceparent", unsampled)])
    ).end()
    provider.shutdown()
    assert [span.name for span in collected.spans] == ["continues a sampled trace"]


def test_context_travels_through_headers() -> None:
    provider, _ = finished_spans(TracingSettings())
    with provider.get_tracer("x").start_as_current_span("publish") as span:
        headers = headers_from_span()
        assert headers == headers_from_span(span)
    provider.shutdown()
    [(name, value)] = headers
    context = span.get_span_context()
    assert name == "traceparent"
    flags = int(context.trace_flags)
    assert flags & 0x01  # sampled (0x02: the SDK's random trace id flag, W3C level 2)
    assert value == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}".encode()
    found = trace.get_current_span(context_from_headers(headers)).get_span_context()
    assert (found.trace_id, found.span_id, found.is_remote) == (
        context.trace_id,
        context.span_id,
        True,
    )


def test_headers_without_context_give_an_empty_context() -> None:
    for headers in (None, [], [("other", b"1")], [("traceparent", None)], [("traceparent", b"")]):
        span = trace.get_current_span(context_from_headers(headers))
        assert not span.get_span_context().is_valid


def test_tracestate_is_carried_too() -> None:
    headers = [("traceparent", TRACEPARENT), ("tracestate", b"vendor=abc")]
    context = context_from_headers(headers)
    span_context = trace.get_current_span(context).get_span_context()
    assert span_context.trace_state.to_header() == "vendor=abc"


def test_nothing_is_installed_without_an_exporter_or_for_the_tempo_sink_on_kafka() -> None:
    assert configure_tracing(load_config(data={"tracing": {"exporter": "none"}}), "x") is None
    assert configure_tracing(load_config(data={"tracing": {"enabled": False}}), "x") is None
    assert configure_tracing(load_config(data={}), "sentio-sink-tempo") is None


def test_batch_larger_than_queue_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="max_export_batch_size"):
        TracingSettings(max_queue_size=10, max_export_batch_size=11)
