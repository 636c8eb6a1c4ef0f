"""What has come out of the pipeline: the rollups, anomalies, alerts and RUL topics, followed
from the run's start by a consumer that only watches (it commits nothing)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sentio_iot.config import SentioConfig
from sentio_iot.errors import SentioError
from sentio_iot.kafka import consumer_config
from sentio_iot.pipeline.topics_ready import ADMIN_TIMEOUT_S, wait_for_partitions
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import CATALOG
from sentio_iot.serde import AvroSerde

log = logging.getLogger(__name__)

RECENT = 5  # anomalies and alerts kept for the view


@dataclass
class Results:
    """What has come out of the pipeline since the run began (a copy for the view)."""

    counts: dict[str, int] = field(default_factory=dict)
    first_s: dict[str, float] = field(default_factory=dict)  # seconds after the run began
    anomalies: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    closest: list[tuple[str, float, str]] = field(default_factory=list)  # device, rul, unit


HOURS_PER = {"h": 1.0, "hours": 1.0, "hour": 1.0, "min": 1 / 60, "s": 1 / 3600, "d": 24.0}


def describe_anomaly(record: dict[str, Any]) -> str:
    expected = record.get("expected")
    around = f" (expected {expected:.4g})" if isinstance(expected, float) else ""
    return (
        f"{record['device_id']} {record['metric']}={record['value']:.4g}{around} "
        f"score {record['score']:.2f} [{record['detector']}]"
    )


def describe_alert(record: dict[str, Any]) -> str:
    return (
        f"{record['severity']} {record['status']} {record['device_id']} "
        f"{record['type']}: {record['message']}"
    )


class ResultTail:
    """Follows the rollups, anomalies, alerts and RUL topics from where they end at ``start()``.

    A thread of its own polls one consumer (no group commits: it only watches) and keeps
    counts, the time of the first record of each kind, the latest anomalies and alerts, and
    each device's latest RUL prediction.
    """

    KINDS: ClassVar[dict[str, str | None]] = {
        "rollups": None,
        "anomalies": "Anomaly",
        "alerts": "Alert",
        "rul": "RulPrediction",
    }

    def __init__(self, config: SentioConfig, began: float, group_id: str) -> None:
        self.config = config
        self.began = began
        self._consumer = Consumer(
            consumer_config(config.kafka, group_id, **{"enable.partition.eof": False})
        )
        self._registry = SchemaRegistry(config.schema_registry)
        specs = {spec.name: spec for spec in CATALOG}
        self._kind_of = {specs[kind].topic(config.topics): kind for kind in self.KINDS}
        self._serdes = {
            topic: AvroSerde(self._registry, topic, schema)
            for topic, kind in self._kind_of.items()
            if (schema := self.KINDS[kind]) is not None
        }
        self._lock = threading.Lock()
        self._results = Results()
        self._recent_anomalies: deque[str] = deque(maxlen=RECENT)
        self._recent_alerts: deque[str] = deque(maxlen=RECENT)
        self._rul: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="result-tail", daemon=True)

    def start(self) -> None:
        """Assign every partition at its current end, then follow from there."""
        assignment = []
        partitions = wait_for_partitions(self._consumer, list(self._kind_of))
        for topic, numbers in partitions.items():
            for partition in numbers:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S
                )
                assignment.append(TopicPartition(topic, partition, high))
        self._consumer.assign(assignment)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._consumer.close()
        self._registry.close()

    def results(self) -> Results:
        with self._lock:
            closest = sorted(
                ((device, rul, unit) for device, (rul, unit) in self._rul.items()),
                key=lambda item: item[1] * HOURS_PER.get(item[2], 1.0),
            )
            return Results(
                counts=dict(self._results.counts),
                first_s=dict(self._results.first_s),
                anomalies=list(self._recent_anomalies),
                alerts=list(self._recent_alerts),
                closest=closest[:RECENT],
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, 0.5)
            except KafkaException as exc:
                log.warning("result tail: %s", exc)
                time.sleep(1.0)
                continue
            for message in messages:
                if message.error() is None:
                    self._take(message.topic(), message.value())

    def _take(self, topic: str, value: bytes | None) -> None:
        kind = self._kind_of[topic]
        record: dict[str, Any] | None = None
        serde = self._serdes.get(topic)
        if serde is not None and value is not None:
            try:
                record = dict(serde.decode(value))
            except SentioError as exc:  # the view skips what it cannot read; the DLQ has it
                log.debug("result tail: undecodable %s record: %s", kind, exc)
                return
        with self._lock:
            counts = self._results.counts
            counts[kind] = counts.get(kind, 0) + 1
            self._results.first_s.setdefault(kind, time.monotonic() - self.began)
            if record is None:
                return
            if kind == "anomalies":
                self._recent_anomalies.append(describe_anomaly(record))
            elif kind == "alerts":
                self._recent_alerts.append(describe_alert(record))
            elif kind == "rul":
                self._rul[record["device_id"]] = (float(record["rul"]), str(record["rul_unit"]))
