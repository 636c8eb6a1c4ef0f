"""The Tempo writer's batch: concatenated requests are the merged request; bad bytes refused."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from sentio_iot.sinks.tempo import parse_request, span_count
from sentio_iot.sinks.writer import SinkRecord


def request(service: str, *names: str) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    resource_spans = out.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    scope = resource_spans.scope_spans.add()
    for n, name in enumerate(names):
        scope.spans.append(
            trace_pb2.Span(
                trace_id=bytes(15) + bytes([n + 1]), span_id=bytes(7) + b"\x01", name=name
            )
        )
    return out


def record(value: bytes | dict[str, object]) -> SinkRecord:
    return SinkRecord("sentio.otlp-spans", "otlp-spans", 0, 0, None, value)


def test_concatenated_requests_parse_as_the_merged_request() -> None:
    first = request("sentio-producer", "poll", "publish")
    second = request("sentio-streams", "process rollups")
    merged = ExportTraceServiceRequest.FromString(
        first.SerializeToString() + second.SerializeToString()
    )
    expected = ExportTraceServiceRequest()
    expected.resource_spans.extend([*first.resource_spans, *second.resource_spans])
    assert merged == expected
    assert span_count(merged) == 3


def test_a_record_is_parsed_with_its_bytes() -> None:
    raw = request("sentio-producer", "poll").SerializeToString()
    value, parsed = parse_request(record(raw))
    assert value is raw
    assert [s.name for s in parsed.resource_spans[0].scope_spans[0].spans] == ["poll"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xff\xff", "not an OTLP ExportTraceServiceRequest"),
        ({"device_id": "p-1"}, "raw OTLP bytes"),
    ],
)
def test_values_that_are_not_requests_are_refused(
    value: bytes | dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_request(record(value))
