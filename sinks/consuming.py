"""The sink's Kafka side: consume, decode, pause/resume, commit, lag; one thread owns the consumer.

confluent-kafka's consumer is not thread-safe and its calls block, so every call runs on one
dedicated thread (:meth:`SinkConsumer.call`), never on the event loop. Values are Avro
(decoded with :class:`AvroSerde` for the topic's catalog schema) or raw bytes for topics
without a schema (``otlp-spans``). A value that does not decode goes to the dead-letter
topic and its offset counts as handled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from sentio_iot.config import SentioConfig
from sentio_iot.errors import DeserializationError, TransientError
from sentio_iot.kafka import (
    ACCESS_REFUSED,
    LoginRefusals,
    access_refused,
    consumer_config,
    probe_access,
)
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.deadletter import DeadLetters
from sentio_iot.sinks.writer import SinkRecord

log = logging.getLogger(__name__)

T = TypeVar("T")
DECODE_RETRY_S = 1.0
PROBE_S = 5.0  # how long subscribe() waits for a broker to check the login and the ACLs


@dataclass
class Polled:
    """What one poll gave: records to write, and offsets handled without writing."""

    records: list[SinkRecord] = field(default_factory=list)
    handled: list[tuple[str, int, int]] = field(default_factory=list)  # topic, partition, offset
    dead_lettered: int = 0


class SinkConsumer:
    """One consumer (group ``group_id``) over the writer's topics, driven from the event loop."""

    def __init__(
        self,
        config: SentioConfig,
        registry: SchemaRegistry,
        *,
        group_id: str,
        catalog_names: Sequence[str],
        dead_letters: DeadLetters,
        on_revoke: Callable[[set[tuple[str, int]]], None],
    ) -> None:
        self.group_id = group_id
        self._names: dict[str, str] = {spec(n).topic(config.topics): n for n in catalog_names}
        self._serdes: dict[str, AvroSerde | None] = {}
        for topic, name in self._names.items():
            schema = spec(name).value_schema
            self._serdes[topic] = AvroSerde(registry, topic, schema) if schema else None
        self._dead_letters = dead_letters
        self._on_revoke = on_revoke
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentio-sink-kafka")
        properties = consumer_config(
            config.kafka, group_id, **{"client.id": f"{config.kafka.client_id}-{group_id}"}
        )
        # A refused login or topic is bad configuration (subscribe() raises), not an outage.
        self._login = LoginRefusals(properties)
        self._consumer = Consumer({**properties, "error_cb": self._login, "logger": self._login})
        self.paused = False
        self.stopping = False
        self._committed: dict[tuple[str, int], int] = {}  # next offset, as this process committed

    @property
    def topics(self) -> list[str]:
        return sorted(self._names)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the consumer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    # -- on the consumer thread --------------------------------------------------------------

    def subscribe(self) -> None:
        """Check the login and the ACLs (ConnectError when refused), then join the group; a
        broker that does not answer yet is waited for by the consumer, as in an outage."""
        if probe_access(self._consumer, self._login, self.topics, PROBE_S) is None:
            log.warning("Kafka does not answer at %s yet: waiting for it", self._login.bootstrap)
        self._login.quiet = False
        self._consumer.subscribe(self.topics, on_revoke=self._revoked, on_lost=self._revoked)

    def poll(self, max_records: int, timeout_s: float, pause: bool) -> Polled:
        """Up to ``max_records`` messages, decoded; with ``pause`` consumption is paused first."""
        self._set_paused(pause)
        messages = self._consumer.consume(max(1, max_records), timeout_s)
        if self._login.refused is not None:  # the password changed or the user was removed
            raise self._login.refusal(self._login.bootstrap, self._login.user)
        polled = Polled()
        for message in messages:
            self._take(message, polled)
        return polled

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        """Commit ``(topic, partition) -> next offset``; False when the group took them away."""
        if not offsets:
            return True
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            log.warning(
                "offsets not committed (%s): another sink process may write these records again",
                exc.args[0],
            )
            return False
        self._committed.update(offsets)
        return True

    def commit_markers(self) -> None:
        """Commit each assigned partition's position where it is past what was committed.

        Call it only when every record consumed so far is written and committed: what then
        lies between is transaction markers (control records, written after every Kafka
        transaction of the stream workers, never handed to a consumer), which the position
        skips but no record's offset ever covers. Without this the group's lag never reaches
        0 on topics written with transactions.
        """
        assigned = self._consumer.assignment()
        if not assigned:
            return
        ahead = {
            (tp.topic, tp.partition): tp.offset
            for tp in self._consumer.position(assigned)
            if tp.offset >= 0 and tp.offset != self._committed.get((tp.topic, tp.partition))
        }
        if ahead:
            self.commit(ahead)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the end of each assigned partition.

        Watermarks come from the last fetch (no round trip) while consuming; a paused
        partition is not fetched, so then they are asked of the broker.
        """
        lag: dict[tuple[str, int], int] = {}
        try:
            assigned = self._consumer.assignment()
            positions = self._consumer.position(assigned) if assigned else []
        except KafkaException:
            return lag
        for tp in positions:
            try:
                if self.paused:
                    low, high = self._consumer.get_watermark_offsets(tp, timeout=1.0)
                else:
                    low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue
            at = tp.offset if tp.offset >= 0 else low
            lag[(tp.topic, tp.partition)] = max(0, high - at)
        return lag

    def assigned(self) -> list[tuple[str, int]]:
        """The partitions this consumer holds now."""
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def close(self) -> None:
        try:
            self._consumer.close()
        finally:
            self._thread.shutdown(wait=False)

    def _set_paused(self, pause: bool) -> None:
        if pause == self.paused:
            if pause:  # partitions assigned since the pause start paused too
                self._consumer.pause(self._consumer.assignment())
            return
        assigned = self._consumer.assignment()
        if pause:
            self._consumer.pause(assigned)
            log.info("consumption paused while the backend catches up")
        else:
            self._consumer.resume(assigned)
            log.info("consumption resumed")
        self.paused = pause

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        for key in revoked:
            self._committed.pop(key, None)
        self._on_revoke(revoked)

    def _take(self, message: Message, polled: Polled) -> None:
        error = message.error()
        if error is not None:
            if error.code() in ACCESS_REFUSED:  # the ACLs: no retry mends that
                topic = message.topic()
                what = (
                    f"group {self.group_id}"
                    if "GROUP" in error.name()
                    else (f"topic {topic}" if topic else "its topics")
                )
                raise access_refused(self._login.bootstrap, self._login.user, what, error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error: %s", error)
            return
        topic = message.topic() or ""
        partition = message.partition() or 0
        offset = message.offset() or 0
        raw = message.value()
        if raw is None and "compact" in spec(self._names[topic]).cleanup_policy:
            polled.handled.append((topic, partition, offset))  # a deletion: nothing to write
            return
        serde = self._serdes.get(topic)
        try:
            if raw is None:
                raise DeserializationError(
                    "null value (a tombstone) on a topic that is not compacted: nothing to write",
                    raw=b"",
                )
            value: Mapping[str, Any] | bytes = raw if serde is None else self._decode(serde, raw)
        except DeserializationError as exc:
            self._dead_letters.send(
                topic=topic,
                partition=partition,
                offset=offset,
                key=message.key(),
                value=raw,
                headers=message.headers(),
                error=str(exc),
                error_type=type(exc).__name__,
            )
            polled.handled.append((topic, partition, offset))
            polled.dead_lettered += 1
            return
        polled.records.append(
            SinkRecord(
                topic=topic,
                catalog_name=self._names[topic],
                partition=partition,
                offset=offset,
                key=message.key(),
                value=value,
                headers=message.headers() or (),
                timestamp_ms=message.timestamp()[1],
                raw_value=raw,
            )
        )

    def _decode(self, serde: AvroSerde, raw: bytes) -> dict[str, Any]:
        """Decode, waiting out a registry that cannot be reached (a new schema id to fetch)."""
        while True:
            try:
                return serde.decode(raw)
            except TransientError as exc:
                if self.stopping:
                    raise DeserializationError(f"registry unreachable: {exc}", raw=raw) from exc
                log.warning("schema registry unreachable (%s): retrying", exc)
                time.sleep(DECODE_RETRY_S)
