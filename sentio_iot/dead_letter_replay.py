"""Read the dead-letter topic back, and send dead letters' original values again.

``read_dead_letters`` reads ``<prefix>deadletter`` from its start (or from ``since``) to its
end without joining a consumer group (nothing is committed, any number of readers agree),
filtered by stage, original topic and time. ``replay`` produces each one's original key,
value and headers to its original topic (or another), waiting until Kafka confirmed them.
A truncated dead letter holds only the first bytes of its value: it is refused, never
replayed half; its coordinates say where the whole original is while that topic keeps it.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from sentio_iot.config import SentioConfig
from sentio_iot.errors import ConfigError, ConnectError, DeserializationError
from sentio_iot.kafka import consumer_config, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.topic_admin import high_watermark

log = logging.getLogger(__name__)

READ_IDLE_S = 5.0  # a partition that gives nothing this long is at its (committed) end
DELIVERY_TIMEOUT_S = 30.0
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class DeadLetterEntry:
    """One dead letter, where it sits in the dead-letter topic and what it says."""

    partition: int  # in the dead-letter topic
    offset: int
    record: dict[str, Any] = field(repr=False)

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.record["ts"] / 1e6, UTC)

    @property
    def size(self) -> int:
        size = int(self.record.get("value_size", -1))
        return size if size >= 0 else len(self.record["value"])

    @property
    def truncated(self) -> bool:
        return bool(self.record.get("value_truncated"))

    @property
    def coordinates(self) -> str:
        return f"{self.record['topic']}[{self.record['partition']}]@{self.record['offset']}"

    def summary(self) -> dict[str, Any]:
        """What `sentio deadletter list --json` prints for it."""
        record = self.record
        return {
            "deadletter_partition": self.partition,
            "deadletter_offset": self.offset,
            "stage": record["stage"],
            "error_type": record["error_type"],
            "error": record["error"],
            "topic": record["topic"],
            "partition": record["partition"],
            "offset": record["offset"],
            "time": self.when.isoformat(timespec="milliseconds"),
            "size": self.size,
            "truncated": self.truncated,
            "sha256": record.get("value_sha256"),
        }


@dataclass
class ReplayResult:
    """What ``replay`` did: how many were sent (or would be), and which it refused."""

    sent: int = 0
    refused: list[tuple[DeadLetterEntry, str]] = field(default_factory=list)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``1d`` (ago) or an ISO-8601 time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    found = _AGE.match(text.strip())
    if found:
        return now - timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: not an age (30m, 2h, 1d) nor an ISO-8601 time (2026-12-07T10:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def dead_letter_topic(config: SentioConfig) -> str:
    return spec("deadletter").topic(config.topics)


def read_dead_letters(
    config: SentioConfig,
    registry: SchemaRegistry,
    *,
    stage: str | None = None,
    topic: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[DeadLetterEntry]:
    """The dead letters matching the filters, oldest first per partition, at most ``limit``.

    ``stage`` matches a stage or its prefix (``sinks`` matches ``sinks.victoriametrics``).
    """
    name = dead_letter_topic(config)
    serde = AvroSerde(registry, name, "DeadLetter")
    found: list[DeadLetterEntry] = []
    for message in _messages(config, name, since):
        try:
            record = serde.decode(message.value() or b"")
        except DeserializationError as exc:
            log.warning(
                "unreadable dead letter partition=%d offset=%d: %s",
                message.partition(),
                message.offset(),
                exc,
            )
            continue
        entry = DeadLetterEntry(message.partition(), message.offset(), record)
        if stage and not (record["stage"] == stage or record["stage"].startswith(f"{stage}.")):
            continue
        if topic and record["topic"] != topic:
            continue
        if since and entry.when < since:
            continue
        found.append(entry)
    found.sort(key=lambda entry: (entry.record["ts"], entry.partition, entry.offset))
    return found[:limit] if limit is not None else found


def _messages(config: SentioConfig, topic: str, since: datetime | None) -> Iterator[Message]:
    """Every message of ``topic`` from ``since`` (or the start) to its end, then stop."""
    group = f"sentio-deadletter-reader-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(config.kafka, group, **{"enable.auto.offset.store": False}))
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise ConfigError(
                f"dead-letter topic {topic} does not exist; run `sentio topics apply` (or check topics.prefix)"
            )
        partitions = [KafkaPartition(topic, p) for p in sorted(described.partitions)]
        ends = {p.partition: high_watermark(consumer, p) for p in partitions}
        starts = _start_offsets(consumer, partitions, since)
        pending = {p.partition for p in starts if ends[p.partition] > max(p.offset, 0)}
        if not pending:
            return
        consumer.assign([p for p in starts if p.partition in pending])
        idle_since = time.monotonic()
        while pending and time.monotonic() - idle_since < READ_IDLE_S:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise ConnectError(f"reading {topic}: {error}")
                continue
            idle_since = time.monotonic()
            yield message
            if message.offset() + 1 >= ends[message.partition()]:
                pending.discard(message.partition())
    finally:
        consumer.close()


def _start_offsets(
    consumer: Consumer, partitions: list[KafkaPartition], since: datetime | None
) -> list[KafkaPartition]:
    if since is None:
        return [KafkaPartition(p.topic, p.partition, OFFSET_BEGINNING) for p in partitions]
    # Kafka's own timestamps come before the record's ts is checked: a cheap first cut
    wanted = [
        KafkaPartition(p.topic, p.partition, int(since.timestamp() * 1000)) for p in partitions
    ]
    return list(consumer.offsets_for_times(wanted, timeout=10))


def replay(
    config: SentioConfig,
    entries: Sequence[DeadLetterEntry],
    *,
    to: str | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Produce each entry's original key, value and headers to its topic (or ``to``).

    Truncated dead letters are refused (listed in the result), never sent in part. Returns
    once Kafka confirmed every message; ConnectError names the ones it did not.
    """
    result = ReplayResult()
    sendable: list[DeadLetterEntry] = []
    for entry in entries:
        if entry.record["partition"] < 0 and to is None:
            reason = (
                f"not from Kafka: {entry.record['stage']} received it from "
                f"{entry.record['topic']}; give --to TOPIC to send it somewhere"
            )
            result.refused.append((entry, reason))
        elif entry.truncated:
            reason = (
                f"truncated: only {len(entry.record['value']):,} of {entry.size:,} bytes kept "
                f"(sha256 {entry.record.get('value_sha256')}); read the original at "
                f"{entry.coordinates} while that topic retains it"
            )
            result.refused.append((entry, reason))
        else:
            sendable.append(entry)
    if dry_run:
        result.sent = len(sendable)
        return result
    if not sendable:
        return result
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer(producer_config(config.kafka, **{"linger.ms": 5}))
    for entry in sendable:
        record = entry.record
        headers = [(h["key"], h["value"]) for h in record.get("headers") or []]
        producer.produce(
            to or record["topic"],
            record["value"],
            record.get("key"),
            headers=headers or None,
            on_delivery=delivered,
        )
        producer.poll(0)
    left = producer.flush(DELIVERY_TIMEOUT_S)
    if left or failures:
        raise ConnectError(
            f"{left + len(failures)} of {len(sendable)} replayed message(s) not confirmed by Kafka: "
            + "; ".join(failures[:3] or ["timed out"])
        )
    result.sent = len(sendable)
    return result
