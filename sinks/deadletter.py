"""The sink's dead-letter publisher: records that cannot be decoded or that the backend refused.

Each goes to the ``deadletter`` topic as a DeadLetter (stage ``sinks.<backend>``) with the
original topic, partition, offset, key, bytes and headers, and the reason (for a refused
record: the backend's answer). ``flush()`` waits until Kafka confirmed them: the runtime
commits the offsets only after that, so a dead letter is never lost to a crash.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from sentio_iot.config import SentioConfig
from sentio_iot.dead_letters import dead_letter_record
from sentio_iot.errors import ConnectError
from sentio_iot.kafka import producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.writer import SinkRecord

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0


class DeadLetters:
    """Publishes DeadLetter records for one sink; call ``flush()`` before committing."""

    def __init__(self, config: SentioConfig, registry: SchemaRegistry, backend: str) -> None:
        self.topic = spec("deadletter").topic(config.topics)
        self.stage = f"sinks.{backend}"
        self._serde = AvroSerde(registry, self.topic, "DeadLetter")
        self._producer = Producer(producer_config(config.kafka, **{"linger.ms": 5}))
        self._failed: list[tuple[bytes | None, bytes, str]] = []  # key, value, error

    def send(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        headers: Any,
        error: str,
        error_type: str,
    ) -> None:
        record = dead_letter_record(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            error=error,
            error_type=error_type,
            stage=self.stage,
            headers=headers or (),
        )
        self._producer.produce(
            self.topic, self._serde.encode(record), key, on_delivery=self._delivered
        )
        self._producer.poll(0)

    def send_record(self, record: SinkRecord, reason: str, error_type: str) -> None:
        self.send(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.raw_value,
            headers=record.headers,
            error=reason,
            error_type=error_type,
        )

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Wait for Kafka to confirm every dead letter, sending failed ones again.

        ConnectError when some are still unconfirmed after ``timeout_s``; they stay queued
        and the next flush tries again.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            left = self._producer.flush(max(0.0, deadline - time.monotonic()))
            failed, self._failed = self._failed, []
            for key, value, _error in failed:
                self._producer.produce(self.topic, value, key, on_delivery=self._delivered)
            if not left and not failed:
                return
            if time.monotonic() >= deadline:
                errors = "; ".join(error for _k, _v, error in failed[:3])
                raise ConnectError(f"{left + len(failed)} dead letter(s) unconfirmed: {errors}")

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            log.warning("dead letter not delivered, will send again: %s", error)
            self._failed.append((message.key(), message.value() or b"", str(error)))
