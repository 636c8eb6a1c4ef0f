"""`topics apply` against the real Kafka: creates, aligns, and a second run changes nothing."""

from __future__ import annotations

import time

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from sentio_iot.config import SentioConfig
from sentio_iot.kafka import admin_client
from sentio_iot.schemas.catalog import CATALOG
from sentio_iot.topic_admin import apply_topics, topic_states


def isolated(config: SentioConfig, prefix: str, **topics: object) -> SentioConfig:
    settings = config.topics.model_copy(update={"prefix": f"{prefix}.", "partitions": 2, **topics})
    return config.model_copy(update={"topics": settings})


def wait_for_retention(admin: AdminClient, topic: str, value: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        for future in admin.describe_configs([resource]).values():
            if future.result(timeout=15)["retention.ms"].value == value:
                return
        time.sleep(0.1)
    raise AssertionError(f"retention.ms of {topic} never became {value}")


def test_apply_creates_every_topic_then_changes_nothing(
    sentio_config: SentioConfig, unique_name: str
) -> None:
    config = isolated(sentio_config, unique_name, partition_overrides={"readings": 3})
    first = apply_topics(config)
    assert sorted(c.topic for c in first) == sorted(f"{unique_name}.{s.name}" for s in CATALOG)
    assert {c.action for c in first} == {"created"}

    assert apply_topics(config) == []

    states = {s.spec.name: s for s in topic_states(config)}
    assert all(s.exists for s in states.values())
    assert states["readings"].partitions == 3
    assert states["rollups"].partitions == 2
    assert states["alerts"].configs["cleanup.policy"] == "compact,delete"
    assert states["readings"].configs["retention.ms"] == str(7 * 86_400_000)


def test_apply_restores_drifted_config_and_grows_partitions(
    sentio_config: SentioConfig, unique_name: str
) -> None:
    config = isolated(sentio_config, unique_name)
    apply_topics(config)
    readings = f"{unique_name}.readings"
    admin = admin_client(config.kafka)
    drift = ConfigResource(
        ConfigResource.Type.TOPIC,
        readings,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([drift]).values():
        future.result(timeout=15)
    wait_for_retention(admin, readings, "1000")  # the broker applies config changes asynchronously

    grown = isolated(sentio_config, unique_name, partition_overrides={"readings": 4})
    changes = {(c.topic, c.action): c.detail for c in apply_topics(grown)}
    assert changes == {
        (readings, "altered"): f"retention.ms: 1000 -> {7 * 86_400_000}",
        (readings, "partitions"): "2 -> 4",
    }
    assert apply_topics(grown) == []

    shrunk = isolated(sentio_config, unique_name, partition_overrides={"readings": 1})
    kept = apply_topics(shrunk)
    assert [(c.topic, c.action) for c in kept] == [(readings, "kept")]
