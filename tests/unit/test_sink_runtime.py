"""Sink runtime pieces without Kafka: batching, backoff, retries, rejections, metrics, loki lines."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from sentio_iot.config import load_config
from sentio_iot.errors import ConfigError
from sentio_iot.plugins import load_sink_plugin, sink_names
from sentio_iot.sinks.batcher import Batcher
from sentio_iot.sinks.loki_streams import Defaults, alert, anomaly, device_event, trace_id
from sentio_iot.sinks.metrics import SinkMetrics
from sentio_iot.sinks.runtime import SinkRuntime, backoff_delay
from sentio_iot.sinks.spans import record_contexts
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, SinkRecord, Writer

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def record(offset: int, partition: int = 0, topic: str = "t", headers=()) -> SinkRecord:
    return SinkRecord(
        topic=topic,
        catalog_name="readings",
        partition=partition,
        offset=offset,
        key=b"k",
        value={"n": offset},
        headers=headers,
        raw_value=b"raw%d" % offset,
    )


def test_batch_is_due_by_size_or_age_and_tracks_next_offsets() -> None:
    batcher = Batcher(size=3, timeout_s=1.0)
    assert not batcher.is_due(0.0) and batcher.take() is None
    batcher.add(record(5), now=10.0)
    batcher.add(record(7, partition=1), now=10.1)
    assert not batcher.is_due(10.5)
    assert batcher.time_left(10.5) == pytest.approx(0.5)
    assert batcher.is_due(11.0)
    batcher.cover("t", 0, 6, now=10.2)  # a dead-lettered offset counts as handled
    batcher.add(record(8, partition=1), now=10.3)
    assert batcher.is_due(10.3) and batcher.room() == 0
    batch = batcher.take()
    assert batch is not None
    assert [r.offset for r in batch.records] == [5, 7, 8]
    assert batch.next_offsets == {("t", 0): 7, ("t", 1): 9}
    assert batcher.take() is None


def test_revoked_partitions_leave_the_open_batch() -> None:
    batcher = Batcher(size=10, timeout_s=1.0)
    for offset, partition in [(1, 0), (2, 1), (3, 0)]:
        batcher.add(record(offset, partition), now=0.0)
    batcher.drop_partitions({("t", 0)})
    batch = batcher.take()
    assert batch is not None
    assert [r.offset for r in batch.records] == [2]
    assert batch.next_offsets == {("t", 1): 3}


def test_backoff_doubles_with_jitter_and_caps() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 5.0)]:
        delay = backoff_delay(attempt, 0.5, 5.0, rng)
        assert ceiling / 2 <= delay <= ceiling


class FlakyWriter(Writer):
    topics = ("readings",)

    def __init__(self, failures: int, reject: dict[int, str] | None = None) -> None:
        self.failures = failures
        self.reject = reject or {}
        self.calls = 0

    async def write(self, batch: Sequence[SinkRecord]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise BackendUnavailable("down", retry_after_s=0)
        if self.reject:
            raise RejectedRecords(self.reject)


class CapturedDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []

    def send_record(self, record: SinkRecord, reason: str, error_type: str) -> None:
        self.sent.append((record.offset, reason, error_type))


async def test_write_retries_until_the_backend_takes_the_batch() -> None:
    writer = FlakyWriter(failures=2)
    runtime = SinkRuntime(load_config(), "victoriametrics", writer=writer, health_port=0)
    batcher = Batcher(10, 1.0)
    for offset in range(4):
        batcher.add(record(offset), now=0.0)
    batch = batcher.take()
    assert batch is not None
    await runtime._write(batch)
    assert writer.calls == 3
    assert (runtime.metrics.retries, runtime.metrics.records_written, runtime.metrics.batches) == (
        2,
        4,
        1,
    )
    assert runtime.backend_down is False


async def test_rejected_records_go_to_dead_letters_and_the_rest_counts() -> None:
    writer = FlakyWriter(failures=0, reject={1: "VictoriaMetrics answered 400: bad"})
    runtime = SinkRuntime(load_config(), "victoriametrics", writer=writer, health_port=0)
    dead = CapturedDeadLetters()
    runtime._dead_letters = dead  # type: ignore[assignment]
    batcher = Batcher(10, 1.0)
    for offset in (10, 11, 12):
        batcher.add(record(offset), now=0.0)
    batch = batcher.take()
    assert batch is not None
    await runtime._write(batch)
    assert dead.sent == [(11, "VictoriaMetrics answered 400: bad", "RejectedRecords")]
    assert (
        runtime.metrics.records_written,
        runtime.metrics.deadletter,
        runtime.metrics.retries,
    ) == (2, 1, 0)


class DroppingWriter(Writer):
    """Answers 2xx, then (as VictoriaMetrics behind a limit) has not stored record 2."""

    topics = ("readings",)

    def __init__(self) -> None:
        self.checks = 0

    async def write(self, batch: Sequence[SinkRecord]) -> object:
        return "receipt"

    async def verify(self, receipt: object) -> dict[int, str]:
        self.checks += 1
        if self.checks == 1:
            raise BackendUnavailable("/metrics unreadable")
        assert receipt == "receipt"
        return {2: "answered 2xx but did not store it"}


async def test_what_verify_finds_unstored_is_dead_lettered_not_counted() -> None:
    writer = DroppingWriter()
    config = load_config(data={"sinks": {"retry_backoff_initial_s": 0.01}})
    runtime = SinkRuntime(config, "victoriametrics", writer=writer, health_port=0)
    dead = CapturedDeadLetters()
    runtime._dead_letters = dead  # type: ignore[assignment]
    batcher = Batcher(10, 1.0)
    for offset in (20, 21, 22, 23):
        batcher.add(record(offset), now=0.0)
    batch = batcher.take()
    assert batch is not None
    await runtime._write(batch)
    assert writer.checks == 2  # asked again after it could not tell
    assert dead.sent == [(22, "answered 2xx but did not store it", "RejectedRecords")]
    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (3, 1)


def test_metrics_render_the_contract_names() -> None:
    metrics = SinkMetrics("loki")
    metrics.batch_written(5, 0.25)
    metrics.batch_written(3, 0.5)
    metrics.retried()
    metrics.dead_lettered(2)
    metrics.set_lag({("sentio.alerts", 1): 7})
    lines = set(metrics.render().splitlines())
    for line in [
        'sentio_sink_records_written_total{sink="loki"} 8',
        'sentio_sink_batches_total{sink="loki"} 2',
        'sentio_sink_retries_total{sink="loki"} 1',
        'sentio_sink_deadletter_total{sink="loki"} 2',
        'sentio_sink_lag{sink="loki",topic="sentio.alerts",partition="1"} 7',
        'sentio_sink_write_seconds_sum{sink="loki"} 0.75',
        'sentio_sink_write_seconds_count{sink="loki"} 2',
        "# TYPE sentio_sink_write_seconds summary",
    ]:
        assert line in lines


def test_span_contexts_are_distinct_and_ordered() -> None:
    other = b"00-11111111111111111111111111111111-2222222222222222-01"
    records = [
        record(1, headers=[("traceparent", TRACEPARENT)]),
        record(2, headers=[("traceparent", TRACEPARENT)]),
        record(3),
        record(4, headers=[("traceparent", other)]),
    ]
    from opentelemetry import trace

    ids = [trace.get_current_span(c).get_span_context().trace_id for c in record_contexts(records)]
    assert ids == [0x0AF7651916CD43DD8448EB211C80319C, 0x11111111111111111111111111111111]


def test_plugins_are_found_by_name() -> None:
    assert {"victoriametrics", "loki", "tempo", "homeassistant"} <= set(sink_names())
    plugin = load_sink_plugin("victoriametrics")
    assert plugin.load_writer().__name__ == "VictoriaMetricsWriter"
    assert plugin.load_settings_model().__name__ == "VictoriaMetricsSinkSettings"
    with pytest.raises(
        ConfigError,
        match="unknown sink 'influx'; installed sinks: alertmanager, homeassistant, loki",
    ):
        load_sink_plugin("influx")


def test_settings_defaults_and_ports() -> None:
    sinks = load_config().sinks
    ports = [
        sinks.victoriametrics.health_port,
        sinks.loki.health_port,
        sinks.tempo.health_port,
        sinks.homeassistant.health_port,
    ]
    assert ports == [9471, 9472, 9473, 9474]
    with pytest.raises(ConfigError, match=r"sinks\.victoriametrics\.method"):
        load_config(data={"sinks": {"victoriametrics": {"method": "carrier-pigeon"}}})


D = Defaults(tenant="acme", site="hall")


def test_device_event_line_labels_and_metadata() -> None:
    event = {
        "device_id": "pump-0003",
        "ts": 1_795_000_000_000_001,
        "kind": "OFFLINE",
        "message": "no reading\nfor 30 s",
        "source": "modbus",
        "details": {},
        "labels": {"site": "s9", "kind": "pump"},
    }
    labels, entry = device_event(event, D, "ab" * 16)
    assert labels == (
        ("service_name", "sentio"),
        ("stream", "device-events"),
        ("tenant", "acme"),
        ("site", "s9"),
        ("kind", "pump"),
        ("level", "error"),
        ("event", "OFFLINE"),
    )
    assert entry.line == "pump-0003 OFFLINE: no reading for 30 s"
    assert entry.ts_ns == 1_795_000_000_000_001_000
    assert entry.metadata == (("device_id", "pump-0003"), ("trace_id", "ab" * 16))
    event["kind"] = "ONLINE"
    assert dict(device_event(event, D, None)[0])["level"] == "info"


def test_alert_and_anomaly_lines() -> None:
    record_ = {
        "alert_id": "al-1",
        "device_id": "press-2",
        "type": "rul_low",
        "severity": "CRITICAL",
        "status": "RESOLVED",
        "start_ts": 1_000,
        "end_ts": 9_000,
        "ack_ts": None,
        "count": 1,
        "message": "RUL below 10 cycles",
        "details": {"metric": "rul"},
        "labels": {},
    }
    labels, entry = alert(record_, D, None)
    assert dict(labels)["level"] == "critical" and dict(labels)["event"] == "RESOLVED"
    assert entry.line == "press-2 rul_low CRITICAL RESOLVED: RUL below 10 cycles"
    assert entry.ts_ns == 9_000_000
    assert entry.metadata == (
        ("device_id", "press-2"),
        ("alert_id", "al-1"),
        ("alert_type", "rul_low"),
        ("metric", "rul"),
    )
    found = {
        "device_id": "m",
        "metric": "current",
        "ts": 2,
        "value": 9.5,
        "score": 6.25,
        "threshold": 4.0,
        "expected": 5.0,
        "lower": None,
        "upper": None,
        "detector": "robust_zscore",
        "detector_version": "1",
        "labels": {},
    }
    labels, entry = anomaly(found, D, None)
    assert dict(labels)["level"] == "warning" and dict(labels)["event"] == "anomaly"
    assert (
        entry.line
        == "m current anomaly: value 9.5, score 6.25 over threshold 4 (robust_zscore 1), expected 5"
    )
    assert trace_id([("traceparent", TRACEPARENT)]) == "0af7651916cd43dd8448eb211c80319c"


async def test_halving_finds_exactly_the_refused_records() -> None:
    from sentio_iot.sinks.halving import refused_records

    requests: list[list[int]] = []

    async def send(subset: list[int]) -> str | None:
        requests.append(subset)
        bad = [i for i in subset if i in (3, 7)]
        return f"400: record {bad[0]} too old" if bad else None

    assert await refused_records(list(range(10)), send) == {
        3: "400: record 3 too old",
        7: "400: record 7 too old",
    }
    assert requests[0] == list(range(10))
    assert len(requests) <= 1 + 2 * 2 * 4  # about 2 log2(n) more per refused record
    assert await refused_records([], send) == {}


def test_batch_span_continues_the_first_context_and_links_all() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sentio_iot.sinks.spans import batch_span

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    other = b"00-11111111111111111111111111111111-2222222222222222-01"
    records = [
        record(1, headers=[("traceparent", TRACEPARENT)]),
        record(2, headers=[("traceparent", other)]),
    ]
    batch_span(provider.get_tracer("t"), "victoriametrics", records).end()
    (span,) = exporter.get_finished_spans()
    assert span.name == "write victoriametrics"
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert [link.context.trace_id for link in span.links] == [
        0x0AF7651916CD43DD8448EB211C80319C,
        0x11111111111111111111111111111111,
    ]
    assert span.attributes["messaging.batch.message_count"] == 2


async def test_a_stopping_sink_gives_up_on_a_dead_backend_without_committing() -> None:
    import time

    from sentio_iot.sinks.runtime import SinkStopped

    writer = FlakyWriter(failures=10**9)
    runtime = SinkRuntime(load_config(), "victoriametrics", writer=writer, health_port=0)
    runtime._stop_deadline = time.monotonic()  # stopping, and the grace is over
    batcher = Batcher(10, 1.0)
    batcher.add(record(1), now=0.0)
    batch = batcher.take()
    assert batch is not None
    with pytest.raises(SinkStopped, match="stopped while victoriametrics was unavailable"):
        await runtime._write(batch)
    assert (writer.calls, runtime.metrics.records_written, runtime.metrics.retries) == (1, 0, 1)
