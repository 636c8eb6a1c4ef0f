"""The Tempo sink against an OTLP/HTTP receiver (Tempo cannot run here) and the real Kafka.

The writer is checked against the receiver for every answer Tempo gives (taken, partial
success, 5xx, 400); the round trip puts spans of two services on a topic of this test with
the Kafka span exporter of ``sentio_iot.tracing``, runs the sink, and checks the trace tree
the receiver decoded: trace ids, parent links across services, service names.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from confluent_kafka.admin import NewTopic
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from otlp_receiver import OtlpReceiver

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import ConfigError
from sentio_iot.kafka import admin_client
from sentio_iot.schemas.catalog import spec
from sentio_iot.settings.tracing import TracingSettings
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.sinks.tempo import TempoWriter
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, SinkRecord
from sentio_iot.tracing import (
    KafkaSpanExporter,
    OtlpHttpSpanExporter,
    context_from_headers,
    headers_from_span,
    tracer_provider,
)


def tempo_config(url: str, prefix: str = "sentio.", **sinks: Any) -> SentioConfig:
    return load_config(
        data={
            "topics": {"prefix": prefix, "partitions": 1},
            "sinks": {
                "batch_timeout_s": 0.2,
                "startup_timeout_s": 2,
                "tempo": {"url": url, "health_port": 0},
                **sinks,
            },
            "tracing": {"export_interval_s": 0.1},
        }
    )


def spans_request(service: str, *names: str, trace_byte: int = 1) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    scope = resource_spans.scope_spans.add()
    for n, name in enumerate(names):
        scope.spans.append(
            trace_pb2.Span(
                trace_id=bytes(15) + bytes([trace_byte]),
                span_id=bytes(7) + bytes([n + 1]),
                name=name,
                start_time_unix_nano=1_795_000_000_000_000_000 + n,
                end_time_unix_nano=1_795_000_000_000_000_100 + n,
            )
        )
    return request.SerializeToString()


def record(value: bytes, offset: int = 0) -> SinkRecord:
    return SinkRecord("sentio.otlp-spans", "otlp-spans", 0, offset, None, value, raw_value=value)


async def test_a_batch_goes_out_as_one_merged_request() -> None:
    async with OtlpReceiver() as receiver:
        writer = TempoWriter(tempo_config(receiver.url))
        await writer.start()
        await writer.write(
            [
                record(spans_request("sentio-producer", "poll", "publish", trace_byte=1)),
                record(spans_request("sentio-streams", "process rollups", trace_byte=2)),
            ]
        )
        await writer.close()
    # The probe at start-up is one empty request; the batch is the second.
    assert len(receiver.requests) == 2
    assert receiver.requests[0] == ExportTraceServiceRequest()
    assert receiver.content_types == ["application/x-protobuf"] * 2
    assert [(s.service, s.name, s.trace_id[-2:], s.span_id[-2:]) for s in receiver.spans] == [
        ("sentio-producer", "poll", "01", "01"),
        ("sentio-producer", "publish", "01", "02"),
        ("sentio-streams", "process rollups", "02", "01"),
    ]
    assert writer.spans_written == 3


async def test_bad_bytes_are_dead_lettered_and_the_rest_written() -> None:
    async with OtlpReceiver() as receiver:
        writer = TempoWriter(tempo_config(receiver.url))
        batch = [
            record(spans_request("sentio-producer", "poll")),
            record(b"\xff\xff\xff", offset=1),
            record(spans_request("sentio-streams", "process rollups", trace_byte=2), offset=2),
        ]
        with pytest.raises(RejectedRecords) as rejected:
            await writer.write(batch)
        await writer.close()
    assert list(rejected.value.reasons) == [1]
    assert "not an OTLP ExportTraceServiceRequest" in rejected.value.reasons[1]
    assert [s.name for s in receiver.spans] == ["poll", "process rollups"]


async def test_a_refusal_with_a_body_is_narrowed_to_the_refused_record() -> None:
    async with OtlpReceiver() as receiver:
        writer = TempoWriter(tempo_config(receiver.url))
        # [0,1,2] refused -> [0] taken, [1,2] refused -> [1] taken, [2] refused
        refused = (400, b"trace too large")
        receiver.answers.extend([refused, (200, b""), refused, (200, b""), refused])
        batch = [record(spans_request("a", f"s{n}", trace_byte=n + 1), offset=n) for n in range(3)]
        with pytest.raises(RejectedRecords) as rejected:
            await writer.write(batch)
        await writer.close()
    assert rejected.value.reasons == {
        2: f"{receiver.url} answered 400: trace too large",
    }
    assert [s.name for s in receiver.spans] == ["s0", "s1"]


async def test_partial_success_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    answer = ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = 1
    answer.partial_success.error_message = "span too old"
    async with OtlpReceiver() as receiver:
        writer = TempoWriter(tempo_config(receiver.url))
        receiver.answers.append((200, answer.SerializeToString()))
        with pytest.raises(RejectedRecords) as rejected:
            await writer.write([record(spans_request("a", "old", "new"))])
        await writer.close()
    assert (writer.spans_written, writer.spans_rejected) == (0, 1)
    assert f"{receiver.url} dropped 1 of 2 span(s): span too old" in caplog.text
    assert rejected.value.reasons == {
        0: f"{receiver.url} answered 2xx but rejected 1 of 2 span(s) (partial_success): span too old"
    }


async def test_records_whose_spans_tempo_rejects_are_dead_lettered_not_counted() -> None:
    """A 200 with partial_success is no write: the records holding rejected spans are found."""
    async with OtlpReceiver() as receiver:
        receiver.refuse = lambda span: "span too old" if span.name == "old" else None
        writer = TempoWriter(tempo_config(receiver.url))
        batch = [
            record(spans_request("a", "s0", trace_byte=1), offset=0),
            record(spans_request("a", "s1", "old", trace_byte=2), offset=1),
            record(spans_request("a", "s2", trace_byte=3), offset=2),
            record(spans_request("a", "s3", trace_byte=4), offset=3),
        ]
        with pytest.raises(RejectedRecords) as rejected:
            await writer.write(batch)
        await writer.close()
    assert rejected.value.reasons == {
        1: f"{receiver.url} answered 2xx but rejected 1 of 2 span(s) (partial_success): span too old"
    }
    assert (writer.spans_written, writer.spans_rejected) == (3, 1)
    assert {s.name for s in receiver.spans} == {"s0", "s1", "s2", "s3"}


async def test_server_errors_and_a_dead_endpoint_are_backend_unavailable() -> None:
    async with OtlpReceiver() as receiver:
        writer = TempoWriter(tempo_config(receiver.url))
        receiver.answers.append((503, b"ingester overloaded"))
        with pytest.raises(BackendUnavailable, match="answered 503: ingester overloaded"):
            await writer.write([record(spans_request("a", "s"))])
        url = receiver.url
    with pytest.raises(BackendUnavailable, match="ConnectError"):
        await writer.write([record(spans_request("a", "s"))])
    await writer.close()
    assert receiver.spans == []
    assert url


async def test_a_wrong_url_stops_the_sink_at_start_up() -> None:
    async with OtlpReceiver() as receiver:
        wrong = receiver.url.replace("/v1/traces", "/v1/metrics")
        writer = TempoWriter(tempo_config(wrong))
        with pytest.raises(ConfigError, match=r"sinks\.tempo\.url: .* answered 404"):
            await writer.start()
        await writer.close()


# -- Kafka round trip --------------------------------------------------------------------


def create_topics(config: SentioConfig) -> None:
    admin = admin_client(config.kafka)
    topics = [NewTopic(spec(n).topic(config.topics), 1, 1) for n in ("otlp-spans", "deadletter")]
    for future in admin.create_topics(topics).values():
        future.result(timeout=15)


def export_a_trace(config: SentioConfig) -> dict[str, str]:
    """producer poll -> publish (headers) -> streams process; ids of every span, in hex."""
    producer = tracer_provider(config.tracing, "sentio-producer", KafkaSpanExporter(config))
    streams = tracer_provider(config.tracing, "sentio-streams", KafkaSpanExporter(config))
    ids: dict[str, str] = {}
    poll_tracer = producer.get_tracer("sentio_iot.producers")
    with (
        poll_tracer.start_as_current_span("modbus poll") as poll,
        poll_tracer.start_as_current_span(
            "publish modbus", kind=trace.SpanKind.PRODUCER
        ) as publish,
    ):
        headers = headers_from_span()
    with streams.get_tracer("sentio_iot.streams").start_as_current_span(
        "process rollups", context=context_from_headers(headers), kind=trace.SpanKind.CONSUMER
    ) as process:
        pass
    for name, span in (("poll", poll), ("publish", publish), ("process", process)):
        context = span.get_span_context()
        ids[name] = f"{context.span_id:016x}"
        ids["trace"] = f"{context.trace_id:032x}"
    producer.shutdown()  # flushes the batch processor and the Kafka producer
    streams.shutdown()
    return ids


async def test_spans_go_through_kafka_to_the_receiver_as_one_trace(unique_name: str) -> None:
    async with OtlpReceiver() as receiver:
        config = tempo_config(receiver.url, prefix=f"{unique_name}.")
        create_topics(config)
        ids = await asyncio.to_thread(export_a_trace, config)
        runtime = SinkRuntime(
            config, "tempo", writer=TempoWriter(config), group_id=unique_name, health_port=0
        )
        task = asyncio.create_task(runtime.run())
        try:
            started = time.monotonic()
            while len(receiver.trace(ids["trace"])) < 3:
                assert not task.done(), task.exception()
                assert time.monotonic() - started < 30, receiver.spans
                await asyncio.sleep(0.1)
        finally:
            runtime.stop()
            await asyncio.wait_for(task, 30)

    spans = {span.name: span for span in receiver.trace(ids["trace"])}
    assert set(spans) == {"modbus poll", "publish modbus", "process rollups"}
    poll, publish, process = spans["modbus poll"], spans["publish modbus"], spans["process rollups"]
    assert (poll.span_id, poll.parent_span_id) == (ids["poll"], "")
    assert (publish.span_id, publish.parent_span_id) == (ids["publish"], ids["poll"])
    assert (process.span_id, process.parent_span_id) == (ids["process"], ids["publish"])
    assert [poll.service, publish.service, process.service] == [
        "sentio-producer",
        "sentio-producer",
        "sentio-streams",
    ]
    assert publish.kind == trace_pb2.Span.SPAN_KIND_PRODUCER
    assert process.kind == trace_pb2.Span.SPAN_KIND_CONSUMER
    assert runtime.metrics.records_written == 2  # one Kafka message per service's export


def test_a_missing_topic_stops_exports_at_once_with_a_warning(
    unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = tempo_config("http://127.0.0.1:9/v1/traces", prefix=f"{unique_name}.")
    exporter = KafkaSpanExporter(config)
    provider = tracer_provider(config.tracing, "sentio-producer", exporter)
    provider.get_tracer("x").start_span("poll").end()
    started = time.monotonic()
    provider.shutdown()  # exports the span: the topic is checked once, nothing waits
    assert time.monotonic() - started < 5
    assert f"topic {unique_name}.otlp-spans does not exist: spans are not exported" in caplog.text
    assert exporter.failed_messages == 0


async def test_the_otlp_http_exporter_posts_to_the_endpoint() -> None:
    async with OtlpReceiver() as receiver:
        exporter = OtlpHttpSpanExporter(receiver.url, timeout_s=5)
        provider = tracer_provider(TracingSettings(), "sentio-streams", exporter)
        with provider.get_tracer("x").start_as_current_span("process rollups batch"):
            pass
        # shutdown exports from this thread with a blocking client: not on the receiver's loop
        await asyncio.to_thread(provider.shutdown)
    [span] = receiver.spans
    assert (span.service, span.name, span.parent_span_id) == (
        "sentio-streams",
        "process rollups batch",
        "",
    )
    assert receiver.content_types == ["application/x-protobuf"]
