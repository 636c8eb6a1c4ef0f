"""The producer never holds a message Kafka will refuse, against the real Kafka and Mosquitto:
a 5 MB unparsable MQTT payload is dead-lettered (bounded) and the readings after it arrive;
a message over the producer's message.max.bytes is dead-lettered in every mode instead of
being buffered; and a buffer an older version filled with such a message no longer wedges
the replay (the message is dead-lettered, the rows behind it are sent)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic
from paho.mqtt.enums import CallbackAPIVersion

from sentio_iot.config import ProducerSettings, SentioConfig, TopicSettings
from sentio_iot.dead_letters import MAX_VALUE_BYTES
from sentio_iot.kafka import admin_client, consumer_config
from sentio_iot.producers.buffer import BufferedMessage, DiskBuffer
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.forwarder import Forwarder, Mode
from sentio_iot.producers.metrics import ProducerMetrics
from sentio_iot.producers.mqtt.config import MqttSourceConfig
from sentio_iot.producers.mqtt.connector import MqttConnector
from sentio_iot.producers.publisher import Publisher
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde

NAMES = ("readings", "device-events", "deadletter")
FIVE_MB = 5 * 1024 * 1024


@pytest.fixture
def config(sentio_config: SentioConfig, unique_name: str, tmp_path: Path) -> SentioConfig:
    config = sentio_config.model_copy(
        update={
            "topics": TopicSettings(prefix=f"{unique_name}."),
            "producer": ProducerSettings(buffer_dir=tmp_path, health_port=0, message_timeout_s=10),
        }
    )
    admin = admin_client(config.kafka)
    futures = admin.create_topics([NewTopic(f"{unique_name}.{name}", 1, 1) for name in NAMES])
    for future in futures.values():
        future.result(timeout=15)
    return config


@pytest.fixture
def publisher(config: SentioConfig) -> Iterator[Publisher]:
    publisher = Publisher(config, "mqtt")
    yield publisher
    publisher.close()


def consume(config: SentioConfig, name: str, count: int, timeout_s: float = 30) -> list[Any]:
    topic = f"{config.topics.prefix}{name}"
    consumer = Consumer(consumer_config(config.kafka, group_id=f"{topic}-check"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
        messages += [m for m in consumer.consume(100, timeout=1.0) if m.error() is None]
    finally:
        consumer.close()
    return messages


def dead_letters(config: SentioConfig, count: int) -> list[dict[str, Any]]:
    messages = consume(config, "deadletter", count)
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, f"{config.topics.prefix}deadletter", "DeadLetter")
        return [serde.decode(m.value()) for m in messages]


async def test_a_5mb_unparsable_mqtt_payload_does_not_wedge_the_producer(
    config: SentioConfig, publisher: Publisher, unique_name: str
) -> None:
    publisher.start()
    settings = MqttSourceConfig.model_validate(
        {
            "source_id": "oversize",
            "port": config.stack.mqtt_port,
            "client_id": f"sentio-test-{uuid.uuid4().hex[:8]}",
            "mappings": [{"topic": f"{unique_name}/{{device}}/{{metric}}"}],
        }
    )
    connector = MqttConnector(settings, publisher, ConnectorContext())
    await connector.connect()
    task = asyncio.create_task(connector.run())
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    try:
        await connector.wait_subscribed(5)
        device.connect("127.0.0.1", config.stack.mqtt_port)
        device.loop_start()
        garbage = b"x" * FIVE_MB
        sent = [device.publish(f"{unique_name}/pump-1/flow", garbage, qos=1)]
        sent += [device.publish(f"{unique_name}/pump-1/flow", str(n), qos=1) for n in range(10)]
        for info in sent:
            await asyncio.to_thread(info.wait_for_publish, 10)

        readings = await asyncio.to_thread(consume, config, "readings", 10)
        (letter,) = await asyncio.to_thread(dead_letters, config, 1)
    finally:
        device.disconnect()
        device.loop_stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connector.close()

    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, f"{config.topics.prefix}readings", "Reading")
        values = [serde.decode(m.value())["metrics"][0]["value"] for m in readings]
    assert values == [float(n) for n in range(10)]
    assert letter["topic"] == f"{unique_name}/pump-1/flow"
    assert letter["stage"] == "produce.mqtt"
    assert (letter["value_truncated"], letter["value_size"]) == (True, FIVE_MB)
    assert letter["value"] == garbage[:MAX_VALUE_BYTES]
    assert letter["value_sha256"] == hashlib.sha256(garbage).hexdigest()
    status = publisher.status()
    assert (status.mode, status.kafka_connected, status.buffered_messages) == (
        Mode.DIRECT,
        True,
        0,
    )


def test_a_message_kafka_would_refuse_is_dead_lettered_not_buffered(
    config: SentioConfig, publisher: Publisher
) -> None:
    readings = f"{config.topics.prefix}readings"
    big = bytes(range(256)) * 8000  # 2,048,000 bytes: over message.max.bytes (1,000,000)
    # A buffer an older version filled: the big message first, three readings behind it.
    buffer = DiskBuffer(publisher.buffer_path, max_bytes=64 * 1024 * 1024, policy="drop_oldest")
    for seq, value in enumerate((big, b"r1", b"r2", b"r3"), start=1):
        buffer.append(BufferedMessage(seq, readings, b"pump-1", value, [], int(time.time() * 1000)))
    buffer.close()

    publisher.start()  # replays the buffer: the big row is dead-lettered, the rest sent
    assert [m.value() for m in consume(config, "readings", 3)] == [b"r1", b"r2", b"r3"]
    publisher._send(readings, b"pump-2", big)  # and once running (direct mode): the same
    letters = dead_letters(config, 2)

    assert [(d["key"], d["stage"], d["error_type"]) for d in letters] == [
        (b"pump-1", "publish", "MSG_SIZE_TOO_LARGE"),
        (b"pump-2", "publish", "MSG_SIZE_TOO_LARGE"),
    ]
    assert re.fullmatch(  # the value and its trace headers
        r"message of 2,048,\d{3} bytes is larger than the producer's message.max.bytes \(1,000,000\)",
        letters[1]["error"],
    ), letters[1]["error"]
    for letter in letters:
        assert (letter["topic"], letter["value_size"]) == (readings, len(big))
        assert letter["value_sha256"] == hashlib.sha256(big).hexdigest()
    deadline = time.monotonic() + 10
    while publisher.status().buffered_messages and time.monotonic() < deadline:
        time.sleep(0.1)
    assert publisher.status().buffered_messages == 0


def test_while_kafka_is_away_an_oversize_message_is_refused_before_the_buffer(
    tmp_path: Path,
) -> None:
    refused: list[tuple[str, bytes | None, int, str]] = []

    def rejected(topic: str, key: bytes | None, value: bytes, _h: Any, error: KafkaError) -> None:
        refused.append((topic, key, len(value), error.name()))

    buffer = DiskBuffer(tmp_path / "away.sqlite", max_bytes=64 * 1024 * 1024, policy="drop_oldest")
    forwarder = Forwarder(
        {"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 100_000},
        buffer,
        records={"readings": "reading"},
        metrics=ProducerMetrics("test"),
        on_rejected=rejected,
    )
    forwarder.start(probe_timeout_s=0.5)
    try:
        assert forwarder.status().mode is Mode.BUFFERING
        forwarder.send("readings", b"pump-1", b"x" * 100_001, [])
        forwarder.send("readings", b"pump-1", b"small", [("traceparent", b"00-1")])
        assert refused == [("readings", b"pump-1", 100_001, "MSG_SIZE_TOO_LARGE")]
        assert [m.value for m in buffer.read()] == [b"small"]
    finally:
        forwarder.close(0.5)
