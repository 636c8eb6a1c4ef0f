"""The publisher and `sentio produce` against the real Kafka and registry.

Keys, values and trace headers as consumed back, metrics and /health, restarts of a failing
connector, a clean stop on SIGTERM.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic
from opentelemetry import trace
from pydantic import BaseModel

from sentio_iot.config import ProducerSettings, SentioConfig, TopicSettings
from sentio_iot.errors import ConfigError
from sentio_iot.kafka import admin_client, consumer_config
from sentio_iot.producers import runtime as runtime_module
from sentio_iot.producers.connector import Connector, ConnectorContext, Emitter
from sentio_iot.producers.health import HealthServer
from sentio_iot.producers.publisher import Publisher
from sentio_iot.producers.runtime import ProducerRuntime, Supervised
from sentio_iot.producers.tracing import tracer_provider
from sentio_iot.records import DeviceEvent, EventKind, Metric, Quality, Reading
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde

TRACEPARENT = re.compile(rb"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
SCHEMAS = {"readings": "Reading", "device-events": "DeviceEvent", "deadletter": "DeadLetter"}


@pytest.fixture
def config(sentio_config: SentioConfig, unique_name: str, tmp_path: Path) -> SentioConfig:
    """The shared stack with topics of this test's own, created empty."""
    config = sentio_config.model_copy(
        update={
            "topics": TopicSettings(prefix=f"{unique_name}."),
            "producer": ProducerSettings(buffer_dir=tmp_path, health_port=0, message_timeout_s=10),
        }
    )
    admin = admin_client(config.kafka)  # kept alive until the futures are done
    futures = admin.create_topics([NewTopic(f"{unique_name}.{name}", 2, 1) for name in SCHEMAS])
    for future in futures.values():
        future.result(timeout=15)
    return config


@pytest.fixture
def publisher(config: SentioConfig) -> Iterator[Publisher]:
    publisher = Publisher(config, "modbus")
    publisher.start()
    yield publisher
    publisher.close()


def consume(config: SentioConfig, name: str, count: int) -> list[Any]:
    topic = f"{config.topics.prefix}{name}"
    consumer = Consumer(consumer_config(config.kafka, group_id=f"{topic}-check"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
    messages: list[Any] = []
    try:
        for _ in range(30):
            messages += [m for m in consumer.consume(1000, timeout=1.0) if m.error() is None]
            if len(messages) >= count:
                break
    finally:
        consumer.close()
    return messages


@pytest.fixture
def registry(config: SentioConfig) -> Iterator[SchemaRegistry]:
    with SchemaRegistry(config.schema_registry) as registry:
        yield registry


def decoder(config: SentioConfig, registry: SchemaRegistry, name: str) -> AvroSerde:
    return AvroSerde(registry, f"{config.topics.prefix}{name}", SCHEMAS[name])


def reading(device: int, seq: int) -> Reading:
    return Reading(
        device_id=f"press-{device}",
        ts_us=1_760_000_000_000_000 + seq * 1000,
        metrics=[
            Metric("pressure", 101.25 + seq, "bar"),
            Metric("state", None, None, Quality.UNCERTAIN, "running"),
        ],
        source="modbus",
        labels={"tenant": "default", "site": "local", "line": f"line-{device}"},
        seq=seq,
    )


def test_readings_and_events_arrive_keyed_traced_and_identical(
    publisher: Publisher, config: SentioConfig, registry: SchemaRegistry
) -> None:
    sent = [reading(device, seq) for seq in range(25) for device in range(4)]
    for r in sent:
        publisher.reading(r)
    event = DeviceEvent(
        "press-2",
        1_760_000_000_500_000,
        EventKind.TIMEOUT,
        "no answer in 2 s",
        "modbus",
        {"retry_in_s": "4"},
    )
    publisher.event(event)
    publisher.close()

    messages = consume(config, "readings", len(sent))
    readings = decoder(config, registry, "readings")
    assert len(messages) == len(sent)
    by_key = {(r.device_id, r.seq): r.to_record() for r in sent}
    for message in messages:
        value = readings.decode(message.value())
        assert message.key() == value["device_id"].encode()
        assert value == by_key[(value["device_id"], value["seq"])]
        headers = dict(message.headers())
        assert TRACEPARENT.match(headers["traceparent"])
    per_device: dict[bytes, list[int]] = {}
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        per_device.setdefault(message.key(), []).append(readings.decode(message.value())["seq"])
    assert per_device == {f"press-{d}".encode(): list(range(25)) for d in range(4)}

    (event_message,) = consume(config, "device-events", 1)
    assert event_message.key() == b"press-2"
    assert (
        decoder(config, registry, "device-events").decode(event_message.value())
        == event.to_record()
    )

    metrics = publisher.metrics
    assert metrics.value(metrics.published, "press-1", "modbus") == 25
    assert metrics.value(metrics.polled, "press-3", "modbus") == 25
    assert metrics.value(metrics.events, "press-2", "modbus") == 1
    assert metrics.value(metrics.errors, "press-2", "modbus", "TIMEOUT") == 1
    assert metrics.total(metrics.buffered) == 0


def test_messages_carry_the_context_of_the_span_they_were_emitted_in(
    publisher: Publisher, config: SentioConfig
) -> None:
    tracer = tracer_provider().get_tracer("test")
    with tracer.start_as_current_span("poll press-0") as span:
        publisher.reading(reading(0, 0))
    context = span.get_span_context()
    publisher.close()
    (message,) = consume(config, "readings", 1)
    match = TRACEPARENT.match(dict(message.headers())["traceparent"])
    assert match is not None
    assert (int(match[1], 16), int(match[2], 16)) == (context.trace_id, context.span_id)
    assert not trace.get_current_span().get_span_context().is_valid


def test_dead_letters_keep_the_raw_input_and_the_reason(
    publisher: Publisher, config: SentioConfig, registry: SchemaRegistry
) -> None:
    publisher.dead_letter(
        b"\xff{not json", "invalid JSON at 1:1", origin="zigbee2mqtt/plug", key=b"plug"
    )
    publisher.close()
    (message,) = consume(config, "deadletter", 1)
    value = decoder(config, registry, "deadletter").decode(message.value())
    assert message.key() == b"plug"
    assert {k: v for k, v in value.items() if k != "ts"} == {
        "topic": "zigbee2mqtt/plug",
        "partition": -1,
        "offset": -1,
        "key": b"plug",
        "value": b"\xff{not json",
        "error": "invalid JSON at 1:1",
        "error_type": "DataError",
        "stage": "produce.modbus",
        "headers": [],
        "value_truncated": False,
        "value_size": 10,
        "value_sha256": hashlib.sha256(b"\xff{not json").hexdigest(),
    }
    assert (
        publisher.metrics.value(publisher.metrics.dead_lettered, "modbus", "zigbee2mqtt/plug") == 1
    )


def test_health_and_metrics_endpoints(publisher: Publisher) -> None:
    publisher.reading(reading(1, 0))
    publisher.event(
        DeviceEvent("press-1", 1_760_000_000_000_000, EventKind.TIMEOUT, "no answer", "modbus")
    )
    publisher.close()  # every delivery report is in
    status = publisher.status()
    server = HealthServer(
        "127.0.0.1",
        0,
        health=lambda: {
            "status": "ok",
            "kafka_connected": status.kafka_connected,
            "buffered_messages": 0,
        },
        metrics=publisher.metrics.render,
    )
    server.start()
    try:
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as answer:
            assert answer.status == 200
            assert json.loads(answer.read()) == {
                "status": "ok",
                "kafka_connected": True,
                "buffered_messages": 0,
            }
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = answer.read().decode()
    finally:
        server.stop()
    assert 'sentio_producer_readings_polled_total{device="press-1",protocol="modbus"} 1\n' in text
    assert "# TYPE sentio_producer_readings_published_total counter\n" in text
    assert (
        'sentio_producer_readings_published_total{device="press-1",protocol="modbus"} 1\n' in text
    )
    assert 'sentio_producer_events_published_total{device="press-1",protocol="modbus"} 1\n' in text
    assert (
        'sentio_producer_errors_total{device="press-1",protocol="modbus",kind="TIMEOUT"} 1\n'
        in text
    )
    assert 'sentio_producer_kafka_connected{protocol="modbus"} 1\n' in text
    assert 'sentio_producer_buffer_messages{protocol="modbus"} 0\n' in text


# -- the runtime and `sentio produce` ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def write_config(config: SentioConfig, path: Path, producers: dict[str, Any]) -> Path:
    data = config.model_dump(
        mode="json", include={"kafka", "schema_registry", "topics", "producer"}
    )
    path.write_text(yaml.safe_dump({**data, "producers": producers}))
    return path


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def published_in(metrics: str) -> float:
    """Readings published, summed over devices, from the Prometheus text."""
    lines = re.findall(r"^sentio_producer_readings_published_total\{.*\} (\S+)$", metrics, re.M)
    return sum(float(value) for value in lines)


def test_sentio_produce_publishes_and_stops_cleanly_on_sigterm(
    config: SentioConfig, registry: SchemaRegistry, tmp_path: Path
) -> None:
    port = free_port()
    config = config.model_copy(
        update={"producer": config.producer.model_copy(update={"health_port": port})}
    )
    path = write_config(
        config, tmp_path / "sentio.yaml", {"simulate": [{"devices": 3, "rate": 100, "seed": 7}]}
    )
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("sentio")),
            "produce",
            "simulate",
            "-c",
            str(path),
            "--progress-every",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            with contextlib.suppress(OSError):  # not listening yet
                if published_in(scrape(f"http://127.0.0.1:{port}/metrics")) >= 400:
                    break
            assert time.monotonic() < deadline, "not 400 readings published within 60 s"
            time.sleep(0.2)
        health = json.loads(scrape(f"http://127.0.0.1:{port}/health"))
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert (health["status"], health["kafka_connected"], health["buffered_messages"]) == (
        "ok",
        True,
        0,
    )
    assert list(health["connectors"].values()) == [
        {"state": "running", "restarts": 0, "last_error": None}
    ]
    assert "progress: " in stderr and "stopping (SIGTERM)" in stderr
    totals = re.search(
        r"stopped: (\d+) reading\(s\) polled, (\d+) published, \d+ event\(s\) published, 0 buffered, 0 dropped",
        stderr,
    )
    assert totals is not None, stderr
    polled, published_count = int(totals[1]), int(totals[2])
    assert polled == published_count > 0
    messages = consume(config, "readings", published_count)
    readings = decoder(config, registry, "readings")
    seqs: dict[str, list[int]] = {}
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        value = readings.decode(message.value())
        seqs.setdefault(value["device_id"], []).append(value["seq"])
    assert len(seqs) == 3 and sum(map(len, seqs.values())) == published_count
    assert all(s == list(range(len(s))) for s in seqs.values())


def test_sentio_produce_refuses_to_start_on_a_config_error(
    config: SentioConfig, tmp_path: Path
) -> None:
    path = write_config(config, tmp_path / "bad.yaml", {"simulate": [{"devices": 0}]})
    result = subprocess.run(
        [str(Path(sys.executable).with_name("sentio")), "produce", "simulate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "producers.simulate[0].devices" in result.stderr


class FlakyConfig(BaseModel):
    pass


class Flaky(Connector):
    """Emits one reading per run; the first two runs then fail, the third one finishes."""

    protocol = "test"

    def __init__(self, emit: Emitter, error: Exception | None = None) -> None:
        super().__init__(FlakyConfig(), emit, ConnectorContext())
        self.runs = 0
        self.closes = 0
        self.error = error

    async def connect(self) -> None:
        pass

    async def run(self) -> None:
        self.runs += 1
        self.emit.reading(reading(9, self.runs))
        if self.error is not None:
            raise self.error
        if self.runs < 3:
            raise RuntimeError("device answered garbage")

    async def close(self) -> None:
        self.closes += 1


async def test_a_failing_connector_is_restarted_and_a_config_error_stops_the_producer(
    config: SentioConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime_module, "BACKOFF_FIRST_S", 0.01)
    config = config.model_copy(update={"producers": {"simulate": [{"devices": 1}]}})
    runtime = ProducerRuntime(config, "simulate")
    flaky = Flaky(runtime.publisher)
    runtime.supervised = [Supervised("test[0] flaky", flaky)]
    await runtime.run(duration_s=30)  # returns early: the only connector finished

    assert (flaky.runs, flaky.closes) == (3, 3)
    assert (runtime.supervised[0].state, runtime.supervised[0].restarts) == ("finished", 2)
    failures = [
        r
        for r in caplog.records
        if r.name == "sentio_iot.producers.runtime" and r.levelname == "ERROR"
    ]
    assert [r.getMessage() for r in failures] == [
        "test[0] flaky failed; restarting in 0 s",
        "test[0] flaky failed again (RuntimeError: device answered garbage, 2 time(s) in a row); restarting in 0 s",
    ]
    assert failures[0].exc_info is not None and failures[1].exc_info is None
    assert (
        runtime.publisher.metrics.value(runtime.publisher.metrics.published, "press-9", "simulate")
        == 3
    )

    broken = ProducerRuntime(config, "simulate")
    broken.supervised = [
        Supervised("test[0] broken", Flaky(broken.publisher, ConfigError("bad register map")))
    ]
    with pytest.raises(ConfigError, match="bad register map"):
        await broken.run(duration_s=30)
    assert broken.supervised[0].state == "failed"
