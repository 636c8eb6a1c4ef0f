"""Avro readings through the real registry and the real Kafka, and back."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from sentio_iot.config import SentioConfig
from sentio_iot.errors import DeserializationError, SentioError
from sentio_iot.kafka import admin_client, consumer_config, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.smoke import _end_offsets, round_trip


def create_topic(config: SentioConfig, name: str, partitions: int = 3) -> None:
    admin = admin_client(config.kafka)  # keep a reference until the futures resolve
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=15)


def test_readings_come_back_identical(sentio_config: SentioConfig, unique_name: str) -> None:
    create_topic(sentio_config, unique_name)
    lines: list[str] = []
    report = round_trip(sentio_config, unique_name, 2_000, progress=lines.append)
    assert (report.sent, report.received, report.identical) == (2_000, 2_000, 2_000)
    assert report.schema_id > 0
    assert lines[0].startswith(f"published 2000 readings to {unique_name}")


def test_corrupt_message_raises_typed_error_with_bytes(
    sentio_config: SentioConfig, unique_name: str
) -> None:
    create_topic(sentio_config, unique_name, partitions=1)
    registry = SchemaRegistry(sentio_config.schema_registry)
    serde = AvroSerde(registry, unique_name, "Reading")
    serde.register()
    garbage = b"\x00\x00\x00\x00\x01\xff\xfe not avro"
    producer = Producer(producer_config(sentio_config.kafka))
    producer.produce(unique_name, key=b"dev-1", value=garbage)
    assert producer.flush(15) == 0

    consumer = Consumer(consumer_config(sentio_config.kafka, group_id=unique_name))
    consumer.assign([TopicPartition(unique_name, 0, 0)])
    try:
        message = consumer.poll(15)
        assert message is not None and message.error() is None
        with pytest.raises(DeserializationError) as caught:
            serde.decode(message.value())
    finally:
        consumer.close()
        registry.close()
    assert caught.value.raw == garbage
    assert caught.value.topic == unique_name


def test_a_topic_created_a_moment_later_is_waited_for(
    sentio_config: SentioConfig, unique_name: str
) -> None:
    """The round trip asks for the topic's metadata; a topic that appears in it a moment
    later (created just before, on a busy broker) is waited for, a missing one is an error."""
    consumer = Consumer(consumer_config(sentio_config.kafka, group_id=unique_name))
    try:
        with pytest.raises(SentioError, match=f"topic {unique_name}-never does not exist"):
            _end_offsets(consumer, f"{unique_name}-never", appear_s=0.5)
        creating = threading.Timer(1.0, create_topic, (sentio_config, unique_name, 2))
        creating.start()
        offsets = _end_offsets(consumer, unique_name, appear_s=20)
        creating.join()
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset) for tp in offsets] == [(0, 0), (1, 0)]
