"""A round trip through the real pipeline plumbing: Avro readings -> registry -> Kafka -> back.

Used by the main job (``sentio run``) to prove the stack works end to end before the workers
start, and by the integration tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from sentio_iot.config import SentioConfig
from sentio_iot.errors import ConnectError, SentioError
from sentio_iot.kafka import consumer_config, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.topic_admin import high_watermark

TOPIC_APPEAR_S = 5.0  # how long a topic that is not in the metadata yet is waited for


@dataclass(frozen=True)
class RoundTripReport:
    topic: str
    sent: int
    received: int
    identical: int
    schema_id: int
    produce_s: float
    consume_s: float

    @property
    def ok(self) -> bool:
        return self.sent == self.received == self.identical


def sample_readings(
    count: int, *, devices: int = 20, tenant: str = "default", site: str = "local"
) -> list[dict[str, Any]]:
    """Deterministic readings shaped like a small plant's: several metrics per message."""
    start_us = int(time.time() * 1_000_000)
    readings = []
    for i in range(count):
        device = i % devices
        readings.append(
            {
                "device_id": f"smoke-{device:03d}",
                "ts": start_us + i * 1000,
                "metrics": [
                    {
                        "name": "temperature",
                        "value": 20.0 + (i % 50) * 0.1,
                        "text": None,
                        "unit": "degC",
                        "quality": "GOOD",
                    },
                    {
                        "name": "vibration",
                        "value": 0.01 * (i % 7),
                        "text": None,
                        "unit": "mm/s",
                        "quality": "GOOD",
                    },
                    {
                        "name": "state",
                        "value": None,
                        "text": "running",
                        "unit": None,
                        "quality": "UNCERTAIN",
                    },
                ],
                "labels": {"tenant": tenant, "site": site, "line": f"line-{device % 3}"},
                "source": "smoke",
                "seq": i,
            }
        )
    return readings


def round_trip(
    config: SentioConfig,
    topic: str,
    count: int = 10_000,
    *,
    timeout_s: float = 60.0,
    progress: Callable[[str], None] = lambda _line: None,
) -> RoundTripReport:
    """Encode ``count`` readings, publish them idempotently, consume them back and compare."""
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, "Reading")
        schema_id = serde.register()
        return _round_trip(config, serde, schema_id, topic, count, timeout_s, progress)


def _round_trip(
    config: SentioConfig,
    serde: AvroSerde,
    schema_id: int,
    topic: str,
    count: int,
    timeout_s: float,
    progress: Callable[[str], None],
) -> RoundTripReport:
    readings = sample_readings(count, tenant=config.tenant, site=config.site)

    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(err.str())

    consumer = Consumer(
        consumer_config(config.kafka, group_id=f"sentio-smoke-{uuid.uuid4().hex[:8]}")
    )
    start_offsets = _end_offsets(consumer, topic)  # read back only what this run sends

    producer = Producer(producer_config(config.kafka))
    started = time.perf_counter()
    for reading in readings:
        _produce(producer, topic, reading["device_id"].encode(), serde.encode(reading), on_delivery)
    remaining = producer.flush(timeout_s)
    produce_s = time.perf_counter() - started
    if remaining or failures:
        detail = failures[0] if failures else f"{remaining} message(s) still queued"
        raise ConnectError(
            f"publishing to {topic} failed: {detail}", fix="is Kafka running? sentio stack up"
        )
    progress(
        f"published {count} readings to {topic} in {produce_s:.2f} s ({count / produce_s:,.0f}/s)"
    )

    consumer.assign(start_offsets)
    received = identical = 0
    expected = {(r["device_id"], r["seq"]): r for r in readings}
    started = time.perf_counter()
    try:
        while received < count and time.perf_counter() - started < timeout_s:
            for message in consumer.consume(num_messages=1000, timeout=1.0):
                error = message.error()
                if error is not None:
                    raise SentioError(f"consuming {topic}: {error.str()}")
                decoded = serde.decode(message.value() or b"")
                key = (decoded["device_id"], decoded["seq"])
                if key not in expected:
                    continue  # another writer's reading on a shared topic
                received += 1
                identical += decoded == expected[key]
    finally:
        consumer.close()
    consume_s = time.perf_counter() - started
    progress(
        f"consumed {received} back in {consume_s:.2f} s; {identical} identical to what was sent"
    )
    return RoundTripReport(topic, count, received, identical, schema_id, produce_s, consume_s)


def _produce(
    producer: Producer, topic: str, key: bytes, value: bytes, on_delivery: Callable[..., None]
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)  # local queue full: let deliveries drain, then retry


def _end_offsets(
    consumer: Consumer, topic: str, appear_s: float = TOPIC_APPEAR_S
) -> list[TopicPartition]:
    deadline = time.monotonic() + appear_s
    while True:
        try:
            metadata = consumer.list_topics(topic, timeout=15)
        except KafkaException as exc:
            raise ConnectError(
                f"cannot reach Kafka: {exc}", fix="is it running? sentio stack up"
            ) from exc
        found = metadata.topics.get(topic)
        partitions = found.partitions if found is not None else {}
        if partitions and found is not None and found.error is None:
            break
        # A topic created a moment ago (topics apply, a test) may not be in the metadata the
        # broker answers with yet: seen under load. Ask again for a few seconds.
        if time.monotonic() >= deadline:
            raise SentioError(f"topic {topic} does not exist", fix="run: sentio topics apply")
        time.sleep(0.2)
    offsets = []
    for partition in sorted(partitions):
        high = high_watermark(consumer, TopicPartition(topic, partition))  # waits for a leader
        offsets.append(TopicPartition(topic, partition, high))
    return offsets
