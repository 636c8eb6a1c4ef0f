"""The load: readings from ``devices`` devices at a paced rate, stamped with the wall clock."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

from sentio_iot.config import SentioConfig
from sentio_iot.reading_codec import ReadingEncoder
from sentio_iot.records import Metric, Reading
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde

METRICS = ("temperature", "vibration", "current", "pressure", "speed")
TICK_S = 0.01


class SentLog:
    """Send time of every acknowledged reading, per partition in offset order."""

    def __init__(self) -> None:
        self.by_partition: dict[int, list[tuple[int, float]]] = {}
        self.acked: list[tuple[float, float]] = []  # (send time, send -> broker ack s)
        self.lock = threading.Lock()

    def delivered(self, sent_at: float) -> Callable[[KafkaError | None, Message], None]:
        def done(error: KafkaError | None, message: Message) -> None:
            if error is None:
                now = time.time()
                with self.lock:
                    self.by_partition.setdefault(message.partition(), []).append(
                        (message.offset(), sent_at)
                    )
                    self.acked.append((sent_at, now - sent_at))

        return done

    def acked_between(self, since: float, until: float) -> list[float]:
        """Send -> acknowledged by the broker (acks=all), for readings sent in the range."""
        with self.lock:
            return [lat for at, lat in self.acked if since <= at < until]


class PacedProducer:
    """Produces readings at a rate for a while; ``sent`` keeps their send times."""

    def __init__(self, config: SentioConfig, name: str, devices: int) -> None:
        self.topic = spec("readings").topic(config.topics)
        with SchemaRegistry(config.schema_registry) as registry:
            schema_id = AvroSerde(registry, self.topic, "Reading").register()
        self.encoder = ReadingEncoder(schema_id, topic=self.topic)
        self.producer = Producer(
            {"bootstrap.servers": config.kafka.bootstrap_servers, "linger.ms": 5, "acks": "all"}
        )
        self.devices = [f"{name}-{d:05d}" for d in range(devices)]
        self.probe_device, self.probe_metric = self.devices[0], METRICS[0]
        self.sent = SentLog()
        self.total = 0
        self._next = 0

    def run(self, rate: float, seconds: float) -> int:
        """Send ``rate`` readings/s for ``seconds``; how many were sent."""
        start = time.monotonic()
        sent = 0
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) * rate) - sent
            for _ in range(due):
                self._send_one()
            sent += max(due, 0)
            self.producer.poll(0)
            time.sleep(TICK_S)
        self.producer.flush(30)
        self.total += sent
        return sent

    def _send_one(self) -> None:
        index = self._next
        self._next += 1
        device = self.devices[index % len(self.devices)]
        step = index // len(self.devices)
        base = index % len(self.devices) % 50
        metrics = [
            Metric(m, base + 10 * math.sin(step / 9 + k) + (step * 7919 + k) % 13 * 0.01, "u")
            for k, m in enumerate(METRICS)
        ]
        sent_at = time.time()
        reading = Reading(device, int(sent_at * 1_000_000), metrics, "bench", {"line": "e2e"})
        self.producer.produce(
            self.topic,
            self.encoder.encode(reading),
            device.encode(),
            on_delivery=self.sent.delivered(sent_at),
        )

    def close(self) -> None:
        self.producer.flush(10)
