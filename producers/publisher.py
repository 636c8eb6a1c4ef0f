"""The publisher: what connectors emit into, turned into Avro messages on Kafka topics.

Readings go to ``sentio.readings`` (schema Reading), device events to
``sentio.device-events`` (DeviceEvent) and inputs no connector could parse to
``sentio.deadletter`` (DeadLetter): Avro in the Confluent wire format, keyed by device id
(UTF-8), each message carrying the W3C trace context (``traceparent``, ``tracestate``) in
its headers. Delivery, ordering and the disk buffer are the :class:`Forwarder`'s job.

Settings (the ``producer:`` section, see docs/configuration.md): ``buffer_dir``,
``buffer_max_bytes``, ``buffer_full_policy``, ``message_timeout_s``, ``linger_ms``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from sentio_iot.config import SentioConfig
from sentio_iot.dead_letters import dead_letter_record
from sentio_iot.errors import ConfigError, SentioError, SerializationError
from sentio_iot.kafka import extra_properties, producer_config
from sentio_iot.producers.buffer import DiskBuffer, Headers
from sentio_iot.producers.forwarder import Forwarder, ForwarderStatus, Mode, device_of
from sentio_iot.producers.metrics import ProducerMetrics
from sentio_iot.producers.tracing import PublishTracing
from sentio_iot.reading_codec import ReadingEncoder
from sentio_iot.records import DeviceEvent, EventKind, Reading
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde

log = logging.getLogger(__name__)

DEVICE_ERROR_KINDS = frozenset({EventKind.ERROR, EventKind.TIMEOUT, EventKind.EXCEPTION})


class Publisher:
    """Implements the connectors' Emitter; thread-safe. ``start()``, emit, then ``close()``."""

    def __init__(
        self,
        config: SentioConfig,
        protocol: str,
        *,
        metrics: ProducerMetrics | None = None,
        buffer_path: Path | None = None,
    ) -> None:
        self.config = config
        self.protocol = protocol
        self.metrics = metrics or ProducerMetrics(protocol)
        self.buffer_path = buffer_path or config.producer.buffer_dir / f"{protocol}.sqlite"
        self.readings_topic = spec("readings").topic(config.topics)
        self.events_topic = spec("device-events").topic(config.topics)
        self.deadletter_topic = spec("deadletter").topic(config.topics)
        self._schemas = {
            self.readings_topic: "Reading",
            self.events_topic: "DeviceEvent",
            self.deadletter_topic: "DeadLetter",
        }
        self._registry: SchemaRegistry | None = None
        self._serdes: dict[str, AvroSerde] = {}
        self._reading_encoder: ReadingEncoder | None = None
        self._tracing = PublishTracing(protocol)
        self._tracing_lock = threading.Lock()
        self._forwarder: Forwarder | None = None

    # -- life cycle --------------------------------------------------------------------------

    def register_schemas(self) -> None:
        """Register the three value schemas; ConnectError when the registry cannot be reached."""
        if self._registry is None:
            self._registry = SchemaRegistry(self.config.schema_registry)
        for topic, schema in self._schemas.items():
            serde = AvroSerde(self._registry, topic, schema)
            schema_id = serde.register()
            log.info("schema %s for %s has id %d", schema, topic, schema_id)
            self._serdes[topic] = serde
            if topic == self.readings_topic:  # the hot path: encoded straight from the dataclass
                self._reading_encoder = ReadingEncoder(schema_id, topic=topic)

    def start(self) -> None:
        """Register the schemas, open the buffer, connect, serve delivery reports."""
        if len(self._serdes) < len(self._schemas):
            self.register_schemas()
        settings = self.config.producer
        buffer = DiskBuffer(
            self.buffer_path,
            max_bytes=settings.buffer_max_bytes,
            policy=settings.buffer_full_policy,
        )
        self._forwarder = Forwarder(
            self._producer_config(),
            buffer,
            records={
                self.readings_topic: "reading",
                self.events_topic: "event",
                self.deadletter_topic: "dead_letter",
            },
            metrics=self.metrics,
            on_rejected=self._rejected,
        )
        self.metrics.gauge(
            "buffer_messages",
            "Messages waiting in the disk buffer.",
            lambda: self.status().buffered_messages,
        )
        self.metrics.gauge(
            "buffer_bytes",
            "Bytes waiting in the disk buffer.",
            lambda: self.status().buffered_bytes,
        )
        self.metrics.gauge(
            "kafka_connected",
            "1 while Kafka takes messages, 0 during an outage.",
            lambda: self.status().kafka_connected,
        )
        try:
            self._forwarder.start(probe_timeout_s=min(2.0, settings.message_timeout_s))
        except KafkaException as exc:  # librdkafka refused its configuration
            buffer.close()
            self._forwarder = None
            raise ConfigError(f"kafka: {exc.args[0].str() if exc.args else exc}") from exc
        except SentioError:  # Kafka refused the login or a topic: bad configuration
            buffer.close()
            self._forwarder = None
            raise

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush to Kafka for up to ``timeout_s``; what is not confirmed stays in the buffer."""
        with self._tracing_lock:
            self._tracing.close()
        if self._forwarder is not None:
            self._forwarder.close(timeout_s)
        if self._registry is not None:
            self._registry.close()

    def stop_waiting(self) -> None:
        """Let emitters blocked on a full buffer return (safe to call from a signal handler)."""
        if self._forwarder is not None:
            self._forwarder.stop_waiting()

    @property
    def started(self) -> bool:
        return self._forwarder is not None

    @property
    def refusal(self) -> SentioError | None:
        """Kafka's ACLs refused a topic to these credentials (the messages stay buffered)."""
        return None if self._forwarder is None else self._forwarder.refusal

    def status(self) -> ForwarderStatus:
        """Mode, Kafka connected, buffer size; before ``start()``: buffering, nothing buffered."""
        if self._forwarder is None:
            return ForwarderStatus(Mode.BUFFERING, False, 0, 0, 0)
        return self._forwarder.status()

    # -- the Emitter -------------------------------------------------------------------------

    def reading(self, reading: Reading) -> None:
        self.metrics.reading_polled(reading.device_id)
        key = reading.device_id.encode()
        assert self._reading_encoder is not None, "start() the publisher first"
        try:
            value = self._reading_encoder.encode(reading)
        except SerializationError as exc:
            raw = json.dumps(reading.to_record(), default=repr).encode()
            self._dead_letter(
                raw,
                str(exc),
                origin=self.readings_topic,
                key=key,
                error_type=type(exc).__name__,
                stage="encode",
            )
            return
        self._send(self.readings_topic, key, value)

    def event(self, event: DeviceEvent) -> None:
        if event.kind in DEVICE_ERROR_KINDS:
            self.metrics.inc(self.metrics.errors, event.device_id, event.kind.value)
        self._publish(self.events_topic, event.device_id.encode(), event.to_record())

    def dead_letter(
        self, raw: bytes, reason: str, *, origin: str, key: bytes | None = None
    ) -> None:
        self._dead_letter(
            raw,
            reason,
            origin=origin,
            key=key,
            error_type="DataError",
            stage=f"produce.{self.protocol}",
        )

    # -- inside ------------------------------------------------------------------------------

    def _dead_letter(
        self,
        raw: bytes,
        reason: str,
        *,
        origin: str,
        key: bytes | None,
        error_type: str,
        stage: str,
        headers: Sequence[tuple[str, str | bytes | None]] = (),
        may_block: bool = True,
    ) -> None:
        """Publish a DeadLetter; partition and offset are -1: the input never was on Kafka."""
        self.metrics.dead_letter(origin)
        record = dead_letter_record(
            topic=origin,
            partition=-1,
            offset=-1,
            key=key,
            value=raw,
            error=reason,
            error_type=error_type,
            stage=stage,
            headers=headers,
        )
        self._publish(self.deadletter_topic, key, record, may_block=may_block)

    def _publish(
        self, topic: str, key: bytes | None, record: dict[str, Any], *, may_block: bool = True
    ) -> None:
        assert self._forwarder is not None, "start() the publisher first"
        try:
            value = self._serdes[topic].encode(record)
        except SerializationError as exc:
            if topic == self.deadletter_topic:
                log.error(
                    "a dead letter from %s does not fit its schema: %s", record.get("topic"), exc
                )
                self.metrics.dropped_message(device_of(key), "dead_letter", "unencodable")
                return
            raw = json.dumps(record, default=repr).encode()
            self._dead_letter(
                raw,
                str(exc),
                origin=topic,
                key=key,
                error_type=type(exc).__name__,
                stage="encode",
                may_block=may_block,
            )
            return
        self._send(topic, key, value, may_block=may_block)

    def _send(self, topic: str, key: bytes | None, value: bytes, *, may_block: bool = True) -> None:
        assert self._forwarder is not None, "start() the publisher first"
        with self._tracing_lock:
            headers = self._tracing.headers()
        self._forwarder.send(topic, key, value, headers, may_block=may_block)

    def _rejected(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers, error: KafkaError
    ) -> None:
        """Kafka refused a message for good (too large, not authorized): dead-letter it."""
        if topic == self.deadletter_topic:
            self.metrics.dropped_message(device_of(key), "dead_letter", "rejected")
            return
        self._dead_letter(
            value,
            error.str(),
            origin=topic,
            key=key,
            error_type=error.name(),
            stage="publish",
            headers=headers,
            may_block=False,
        )

    def _producer_config(self) -> dict[str, Any]:
        settings = self.config.producer
        tuned = {
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 2000,  # notice a returning broker within seconds
            "allow.auto.create.topics": False,  # topics come from the catalog: sentio topics apply
            **extra_properties(self.config.kafka),
        }
        return producer_config(
            self.config.kafka,
            **{
                **tuned,
                "client.id": f"{self.config.kafka.client_id}-produce-{self.protocol}",
                "message.timeout.ms": int(settings.message_timeout_s * 1000),
                "linger.ms": settings.linger_ms,
            },
        )
