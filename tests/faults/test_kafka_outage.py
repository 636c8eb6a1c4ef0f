"""Kafka dies while readings flow: they wait in the disk buffer and arrive exactly once, in order.

Each test kills the broker of its own (``OwnKafka``) while a thread emits readings, keeps
emitting through the outage, restarts the broker, then reads the topic back and expects
every (device_id, seq) exactly once and each device's readings in seq order.

The broker is killed when nothing is in flight (the emitter pauses for the last batch to be
confirmed). A produce request the broker wrote but never confirmed before dying would come
back from the buffer as a second copy once the outage outlasts ``message_timeout_s``: that
case is not what these tests measure.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from sentio_iot.config import ProducerSettings, SentioConfig, StackSettings, TopicSettings
from sentio_iot.kafka import admin_client, consumer_config
from sentio_iot.producers.buffer import DiskBuffer
from sentio_iot.producers.forwarder import Mode
from sentio_iot.producers.publisher import Publisher
from sentio_iot.records import Metric, Reading
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.stack.kafka import KafkaService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.process import ProcessRecord, is_running, log_tail, spawn, wait_gone

START_TIMEOUT_S = 60.0
DEVICES = [f"pump-{n}" for n in range(4)]
PARTITIONS = 3
EMIT_EVERY_S = 0.002  # one reading per device per pass: about 1,500 readings a second


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class OwnKafka:
    """A single-node Kafka of one test: started, killed and restarted on the same data."""

    def __init__(self, shared: StackSettings, home: Path) -> None:
        jars = shared.home / f"kafka-{shared.kafka_version}"
        (home / jars.name).symlink_to(jars, target_is_directory=True)
        settings = shared.model_copy(
            update={"home": home, "kafka_port": free_port(), "kafka_controller_port": free_port()}
        )
        self.service = KafkaService(settings, StackPaths(home))
        self.bootstrap = self.service.address
        self.record: ProcessRecord | None = None

    def start(self) -> None:
        self.service.install(progress=lambda _line: None)  # the shared cache: nothing to fetch
        self.service.prepare(progress=lambda _line: None)
        self.record = spawn(
            self.service.command(), log_path=self.service.log_path, cwd=self.service.data_dir
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.service.check().healthy:
            if not is_running(self.record) or time.monotonic() > deadline:
                raise AssertionError(f"own Kafka did not start: {log_tail(self.service.log_path)}")
            time.sleep(0.2)

    def kill(self, signum: signal.Signals = signal.SIGKILL) -> None:
        """Signal the broker and wait until it is gone."""
        assert self.record is not None and is_running(self.record)
        os.killpg(self.record.pid, signum)
        assert wait_gone(self.record, 30), "own Kafka did not exit"

    @property
    def running(self) -> bool:
        return self.record is not None and is_running(self.record)

    def stop(self) -> None:
        if self.running:
            self.kill(signal.SIGKILL)


@pytest.fixture(scope="module")
def kafka_of_this_module(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnKafka]:
    kafka = OwnKafka(sentio_config.stack, tmp_path_factory.mktemp("stack"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def own_kafka(kafka_of_this_module: OwnKafka) -> OwnKafka:
    """The module's broker (one start for all tests), running when a test begins."""
    if not kafka_of_this_module.running:
        kafka_of_this_module.start()
    return kafka_of_this_module


@pytest.fixture
def config(
    sentio_config: SentioConfig, own_kafka: OwnKafka, unique_name: str, tmp_path: Path
) -> SentioConfig:
    config = sentio_config.model_copy(
        update={
            "kafka": sentio_config.kafka.model_copy(
                update={"bootstrap_servers": own_kafka.bootstrap}
            ),
            "topics": TopicSettings(prefix=f"{unique_name}."),
            "producer": ProducerSettings(
                buffer_dir=tmp_path / "buffer", health_port=0, message_timeout_s=3, linger_ms=5
            ),
        }
    )
    topics = [NewTopic(f"{unique_name}.readings", PARTITIONS, 1)]
    topics += [NewTopic(f"{unique_name}.{name}", 1, 1) for name in ("device-events", "deadletter")]
    admin = admin_client(config.kafka)  # kept alive until the futures are done
    for future in admin.create_topics(topics).values():
        future.result(timeout=15)
    return config


class Emitting:
    """A thread that emits readings for every device, round robin, until stopped."""

    def __init__(self, publisher: Publisher, sent: dict[str, int] | None = None) -> None:
        self.publisher = publisher
        self.sent = dict(sent or dict.fromkeys(DEVICES, 0))
        self.resume()

    def resume(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emitting")
        self._thread.start()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.sent

    def _run(self) -> None:
        while not self._stop.is_set():
            for device in DEVICES:
                seq = self.sent[device]
                metrics = [
                    Metric("flow", float(seq), "m3/h"),
                    Metric("vibration", seq / 1000, "mm/s"),
                ]
                reading = Reading(
                    device, 1_760_000_000_000_000 + seq, metrics, "simulate", {"site": "local"}, seq
                )
                self.publisher.reading(reading)
                self.sent[device] = seq + 1
            time.sleep(EMIT_EVERY_S)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def kill_when_idle(kafka: OwnKafka, emitting: Emitting, signum: signal.Signals) -> None:
    """Pause emitting until Kafka confirmed everything, kill the broker, emit again."""
    emitting.stop()
    wait_for(
        lambda: emitting.publisher.status().in_flight == 0, 15, "confirmations before the kill"
    )
    kafka.kill(signum)
    emitting.resume()


def published(publisher: Publisher) -> float:
    return publisher.metrics.total(publisher.metrics.published)


def read_back(config: SentioConfig, expected: int) -> dict[str, list[int]]:
    """Every reading on the topic, as each device's seqs in partition order."""
    topic = f"{config.topics.prefix}readings"
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, "Reading")
        serde.register()  # the same schema the publisher registered: its id, no decoding lookup
    consumer = Consumer(consumer_config(config.kafka, group_id=f"{topic}-check"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    messages: list[Any] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = consumer.consume(5000, timeout=1.0)
            messages += [m for m in batch if m.error() is None]
            if len(messages) >= expected and not batch:  # one empty pass: nothing more coming
                break
    finally:
        consumer.close()
    seqs: dict[str, list[int]] = {}
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        value = serde.decode(message.value())
        assert message.key() == value["device_id"].encode()
        seqs.setdefault(value["device_id"], []).append(value["seq"])
    return seqs


def test_readings_emitted_through_an_outage_arrive_once_in_order(
    config: SentioConfig, own_kafka: OwnKafka
) -> None:
    publisher = Publisher(config, "simulate")
    publisher.start()
    emitting = Emitting(publisher)
    try:
        wait_for(lambda: published(publisher) >= 500, 30, "readings to flow")
        kill_when_idle(own_kafka, emitting, signal.SIGTERM)
        wait_for(lambda: publisher.status().mode is Mode.BUFFERING, 15, "the publisher to notice")
        time.sleep(config.producer.message_timeout_s + 1)  # queued messages time out meanwhile
        assert publisher.status().buffered_messages > 1000
        own_kafka.start()
        wait_for(
            lambda: (
                publisher.status().mode is Mode.DIRECT and publisher.status().buffered_messages == 0
            ),
            60,
            "the buffer to drain",
        )
        time.sleep(1)  # and a little more straight to Kafka
    finally:
        sent = emitting.stop()
        publisher.close()

    metrics = publisher.metrics
    assert metrics.total(metrics.buffered) > 1000
    assert metrics.total(metrics.dropped) == 0
    assert metrics.total(metrics.published) == sum(sent.values())
    assert read_back(config, sum(sent.values())) == {d: list(range(n)) for d, n in sent.items()}


def test_a_producer_restarted_during_an_outage_sends_its_buffer_first(
    config: SentioConfig, own_kafka: OwnKafka
) -> None:
    first = Publisher(config, "simulate")
    first.start()
    emitting = Emitting(first)
    try:
        wait_for(lambda: published(first) >= 500, 30, "readings to flow")
        kill_when_idle(own_kafka, emitting, signal.SIGKILL)
        wait_for(lambda: first.status().mode is Mode.BUFFERING, 15, "the publisher to notice")
        time.sleep(1)
    finally:
        sent = emitting.stop()
        first.close()  # Kafka is away: what it holds goes to the disk buffer
    left = DiskBuffer(first.buffer_path, max_bytes=2**30, policy="drop_oldest")
    waiting = left.count
    left.close()
    assert waiting > 500

    second = Publisher(config, "simulate")
    second.start()
    assert (second.status().mode, second.status().buffered_messages) == (Mode.BUFFERING, waiting)
    emitting = Emitting(second, sent)
    try:
        time.sleep(1)
        own_kafka.start()
        wait_for(
            lambda: second.status().mode is Mode.DIRECT and second.status().buffered_messages == 0,
            60,
            "the buffer to drain",
        )
        time.sleep(1)
    finally:
        sent = emitting.stop()
        second.close()

    assert read_back(config, sum(sent.values())) == {d: list(range(n)) for d, n in sent.items()}
