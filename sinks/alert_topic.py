"""The latest state of every alert, read from the compacted ``alerts`` topic up to its end.

A sink that must know every open alert at start (the Alertmanager sink re-sends firing ones)
reads this once; afterwards its consumer brings the changes. ``ends`` is where the read
stopped per partition: a record the consumer delivers below it is already in ``latest``.
Reads read_committed, like every consumer of the stream workers' topics.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sentio_iot.config import SentioConfig
from sentio_iot.errors import DeserializationError, OperationTimeout
from sentio_iot.kafka import consumer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde

POLL_S = 0.5


@dataclass
class AlertStates:
    latest: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # key -> Alert record
    ends: dict[int, int] = field(default_factory=dict)  # partition -> next offset not read
    unreadable: int = 0  # records that did not decode (the sink's consumer dead-letters them)


def read_alert_states(config: SentioConfig, timeout_s: float) -> AlertStates:
    """Every alert's latest state; blocking (run it on a thread)."""
    topic = spec("alerts").topic(config.topics)
    group = f"sentio-alert-states-{uuid.uuid4().hex[:8]}"  # never commits
    consumer = Consumer(consumer_config(config.kafka, group))
    states = AlertStates()
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        todo: dict[int, int] = {}
        for partition in partitions:
            tp = TopicPartition(topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            states.ends[partition] = high
            if high > low:
                todo[partition] = high
        if not todo:
            return states
        consumer.assign([TopicPartition(topic, p, 0) for p in todo])
        deadline = time.monotonic() + timeout_s
        with SchemaRegistry(config.schema_registry) as registry:
            serde = AvroSerde(registry, topic, "Alert")
            while todo:
                if time.monotonic() > deadline:
                    raise OperationTimeout(f"reading {topic} took longer than {timeout_s:g} s")
                message = consumer.poll(POLL_S)
                if message is None:
                    _drop_finished(consumer, topic, todo)
                    continue
                if message.error():
                    continue
                _take(serde, message, states)
                if message.offset() + 1 >= todo.get(message.partition(), 0):
                    todo.pop(message.partition(), None)
    finally:
        consumer.close()
    return states


def _take(serde: AvroSerde, message: Any, states: AlertStates) -> None:
    key = (message.key() or b"").decode("utf-8", "replace")
    raw = message.value()
    if raw is None:  # a tombstone: the key has no state
        states.latest.pop(key, None)
        return
    try:
        states.latest[key] = serde.decode(raw)
    except DeserializationError:
        states.unreadable += 1


def _drop_finished(consumer: Any, topic: str, todo: dict[int, int]) -> None:
    """Partitions whose position reached the end (transaction markers end a partition too)."""
    for tp in consumer.position([TopicPartition(topic, p) for p in list(todo)]):
        if tp.offset >= 0 and tp.offset >= todo[tp.partition]:
            todo.pop(tp.partition, None)
