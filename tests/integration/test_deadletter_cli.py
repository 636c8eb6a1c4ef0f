"""`sentio deadletter list|replay` against the real Kafka and registry: dead letters written
by the sinks' own publisher, listed with their reasons and filtered, then replayed byte for
byte (key, value, headers) to their original topic or another; truncated ones refused."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig, TopicSettings
from sentio_iot.dead_letters import MAX_VALUE_BYTES
from sentio_iot.kafka import admin_client, consumer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.sinks.deadletter import DeadLetters

POISON = b"\x00\x00\x00\x00\x07not avro"
LARGE = bytes(range(256)) * (MAX_VALUE_BYTES // 256 + 100)


@pytest.fixture
def config(sentio_config: SentioConfig, unique_name: str) -> SentioConfig:
    config = sentio_config.model_copy(update={"topics": TopicSettings(prefix=f"{unique_name}.")})
    admin = admin_client(config.kafka)
    names = ("deadletter", "readings", "replayed")
    futures = admin.create_topics([NewTopic(f"{unique_name}.{name}", 2, 1) for name in names])
    for future in futures.values():
        future.result(timeout=15)
    return config


@pytest.fixture
def letters(config: SentioConfig, sentio_config: SentioConfig) -> Iterator[SentioConfig]:
    """Three dead letters: two from the VictoriaMetrics sink (one truncated), one from Loki."""
    with SchemaRegistry(sentio_config.schema_registry) as registry:
        write_letters(config, registry)
    yield config


def write_letters(config: SentioConfig, registry: SchemaRegistry) -> None:
    readings = f"{config.topics.prefix}readings"
    vm = DeadLetters(config, registry, "victoriametrics")
    vm.send(
        topic=readings,
        partition=1,
        offset=41,
        key=b"pump-1",
        value=POISON,
        headers=[("traceparent", b"00-abc"), ("origin", None)],
        error="schema id 7 is JSON, not AVRO",
        error_type="DeserializationError",
    )
    vm.send(
        topic=readings,
        partition=0,
        offset=42,
        key=b"pump-2",
        value=LARGE,
        headers=None,
        error="value too large",
        error_type="DeserializationError",
    )
    vm.flush()
    vm.close()
    loki = DeadLetters(config, registry, "loki")
    loki.send(
        topic=f"{config.topics.prefix}device-events",
        partition=0,
        offset=3,
        key=b"press-1",
        value=b"\x00\x00\x00\x00\x01\x02",
        headers=None,
        error="line over 256 KiB",
        error_type="DataError",
    )
    loki.flush()
    loki.close()


def sentio(config: SentioConfig, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["deadletter", *args, "--prefix", config.topics.prefix], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def consume(config: SentioConfig, name: str, count: int) -> list[Any]:
    topic = f"{config.topics.prefix}{name}"
    consumer = Consumer(consumer_config(config.kafka, group_id=f"{topic}-check"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
    messages: list[Any] = []
    try:
        for _ in range(15):
            messages += [m for m in consumer.consume(100, timeout=1.0) if m.error() is None]
            if len(messages) >= count:
                break
        messages += [m for m in consumer.consume(100, timeout=1.0) if m.error() is None]
    finally:
        consumer.close()
    return messages


def test_list_shows_each_dead_letter_with_its_reason_and_filters(letters: SentioConfig) -> None:
    readings = f"{letters.topics.prefix}readings"
    rows = [json.loads(line) for line in sentio(letters, "list", "--json").splitlines()]
    assert [(r["stage"], r["topic"], r["partition"], r["offset"]) for r in rows] == [
        ("sinks.victoriametrics", readings, 1, 41),
        ("sinks.victoriametrics", readings, 0, 42),
        ("sinks.loki", f"{letters.topics.prefix}device-events", 0, 3),
    ]
    assert rows[0]["error"] == "schema id 7 is JSON, not AVRO"
    assert rows[0]["error_type"] == "DeserializationError"
    assert (rows[0]["size"], rows[0]["truncated"]) == (len(POISON), False)
    assert (rows[1]["size"], rows[1]["truncated"]) == (len(LARGE), True)
    assert rows[1]["sha256"] == hashlib.sha256(LARGE).hexdigest()

    assert len(sentio(letters, "list", "--json", "--stage", "sinks.loki").splitlines()) == 1
    assert len(sentio(letters, "list", "--json", "--stage", "sinks").splitlines()) == 3
    assert len(sentio(letters, "list", "--json", "--topic", readings).splitlines()) == 2
    assert len(sentio(letters, "list", "--json", "--limit", "1").splitlines()) == 1
    assert sentio(letters, "list", "--json", "--since", "2099-01-01") == ""
    assert len(sentio(letters, "list", "--json", "--since", "10m").splitlines()) == 3

    table = sentio(letters, "list", "--stage", "sinks.victoriametrics")
    assert f"{readings}[1]@41" in table
    assert "DeserializationError: schema id 7 is JSON, not AVRO" in table
    assert f"{len(LARGE):,} (truncated)" in table
    assert table.splitlines()[-1] == (f"2 dead letter(s) in {letters.topics.prefix}deadletter")


def test_replay_sends_the_originals_back_and_refuses_truncated_ones(
    letters: SentioConfig,
) -> None:
    readings = f"{letters.topics.prefix}readings"
    dry = sentio(letters, "replay", "--stage", "sinks.victoriametrics", "--dry-run")
    assert dry.splitlines()[-1] == (
        "would replay 1 of 2 dead letter(s) to their original topics; 1 refused"
    )
    assert f"refused {readings}[0]@42 (sinks.victoriametrics): truncated" in dry
    assert consume(letters, "readings", 0) == []

    out = sentio(letters, "replay", "--stage", "sinks.victoriametrics")
    assert out.splitlines()[-1] == (
        "replayed 1 of 2 dead letter(s) to their original topics; 1 refused"
    )
    (message,) = consume(letters, "readings", 1)
    assert (message.key(), message.value()) == (b"pump-1", POISON)
    assert message.headers() == [("traceparent", b"00-abc"), ("origin", None)]

    target = f"{letters.topics.prefix}replayed"
    out = sentio(letters, "replay", "--stage", "sinks.loki", "--to", target)
    assert out.splitlines()[-1] == f"replayed 1 of 1 dead letter(s) to {target}; 0 refused"
    (message,) = consume(letters, "replayed", 1)
    assert (message.key(), message.value()) == (b"press-1", b"\x00\x00\x00\x00\x01\x02")


def test_a_bad_since_and_a_missing_topic_are_one_line_errors(config: SentioConfig) -> None:
    result = CliRunner().invoke(
        cli, ["deadletter", "list", "--prefix", config.topics.prefix, "--since", "yesterday"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --since 'yesterday': not an age (30m, 2h, 1d) nor an ISO-8601 time (2026-12-07T10:00)"
    )
    result = CliRunner().invoke(cli, ["deadletter", "list", "--prefix", "t-no-such-prefix."])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: dead-letter topic t-no-such-prefix.deadletter does not exist; run `sentio topics apply` (or check topics.prefix)"
    )
