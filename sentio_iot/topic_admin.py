"""Make Kafka match the topic catalog, idempotently, with the admin API."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from sentio_iot.config import KafkaSettings, SentioConfig
from sentio_iot.errors import ConnectError, StackError
from sentio_iot.kafka import LoginRefusals, admin_client
from sentio_iot.schemas.catalog import CATALOG, TopicSpec

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0


@dataclass(frozen=True)
class TopicChange:
    topic: str
    action: str  # created | altered | partitions | kept
    detail: str


@dataclass(frozen=True)
class TopicState:
    spec: TopicSpec
    topic: str
    exists: bool
    partitions: int | None
    configs: dict[str, str]
    end_offsets: int | None


def _describe_cluster(
    admin: AdminClient, kafka: KafkaSettings, login: LoginRefusals | None = None
) -> dict[str, int]:
    """Existing topic -> partition count; ConnectError when the broker does not answer, and
    at once when it refuses the login (``login``: the error callback ``admin`` was made with)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            metadata = admin.list_topics(timeout=min(1.0, max(deadline - time.monotonic(), 0.1)))
            break
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback
            if login is not None and login.refused:
                raise login.error(kafka) from exc
            if time.monotonic() < deadline:
                continue
            # A refused TLS handshake reads as a transport failure here.
            secured = kafka.security_protocol != "PLAINTEXT" or "security.protocol" in kafka.extra
            raise ConnectError(
                f"cannot reach Kafka at {kafka.bootstrap_servers}: "
                f"{exc.args[0].str() if exc.args else exc}",
                fix="is it running, and do kafka.security_protocol, kafka.sasl_* and the ssl.* "
                "properties of kafka.extra match its listener? (a wrong CA reads the same)"
                if secured
                else "is it running? try: sentio stack up",
            ) from exc
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _current_configs(admin: AdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    if not topics:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
    result: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources).items():
        entries = future.result(timeout=TIMEOUT_S)
        result[resource.name] = {name: entry.value for name, entry in entries.items()}
    return result


def apply_topics(
    config: SentioConfig, specs: tuple[TopicSpec, ...] = CATALOG, admin: AdminClient | None = None
) -> list[TopicChange]:
    """Create missing topics, align configs and grow partitions. Returns what changed."""
    login = LoginRefusals()
    admin = admin or admin_client(config.kafka, error_cb=login, logger=login)
    existing = _describe_cluster(admin, config.kafka, login)
    settings = config.topics
    changes: list[TopicChange] = []

    missing = [s for s in specs if s.topic(settings) not in existing]
    if missing:
        new = [
            NewTopic(
                s.topic(settings),
                num_partitions=s.partitions(settings),
                replication_factor=settings.replication_factor,
                config=s.kafka_configs(),
            )
            for s in missing
        ]
        for name, future in admin.create_topics(new, request_timeout=TIMEOUT_S).items():
            if _wait(future, f"create topic {name}", tolerate=KafkaError.TOPIC_ALREADY_EXISTS):
                continue  # created meanwhile by another apply
            spec = next(s for s in missing if s.topic(settings) == name)
            changes.append(
                TopicChange(
                    name,
                    "created",
                    f"{spec.partitions(settings)} partitions, {_fmt(spec.kafka_configs())}",
                )
            )

    present = [s for s in specs if s.topic(settings) in existing]
    current = _current_configs(admin, [s.topic(settings) for s in present])
    for s in present:
        name = s.topic(settings)
        changes.extend(_align_configs(admin, s, name, current.get(name, {})))
        changes.extend(_grow_partitions(admin, s, name, existing[name], s.partitions(settings)))
    for change in changes:
        log.info("topic %s %s: %s", change.topic, change.action, change.detail)
    return changes


def _align_configs(
    admin: AdminClient, spec: TopicSpec, name: str, current: dict[str, str]
) -> list[TopicChange]:
    wanted = spec.kafka_configs()
    differing = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not differing:
        return []
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        name,
        incremental_configs=[
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in differing.items()
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        _wait(future, f"alter configs of {name}")
    detail = ", ".join(f"{k}: {current.get(k)} -> {v}" for k, v in differing.items())
    return [TopicChange(name, "altered", detail)]


def _grow_partitions(
    admin: AdminClient, spec: TopicSpec, name: str, have: int, want: int
) -> list[TopicChange]:
    if want == have:
        return []
    if want < have:
        log.warning(
            "topic %s has %d partitions, catalog says %d; Kafka cannot shrink, left as is",
            name,
            have,
            want,
        )
        return [
            TopicChange(
                name, "kept", f"has {have} partitions > catalog {want}: Kafka cannot shrink them"
            )
        ]
    for future in admin.create_partitions([NewPartitions(name, want)]).values():
        if _wait(future, f"add partitions to {name}", tolerate=KafkaError.INVALID_PARTITIONS):
            return []  # our metadata was stale: another apply already grew it
    return [TopicChange(name, "partitions", f"{have} -> {want}")]


def _wait(future: Any, what: str, tolerate: int | None = None) -> bool:
    """Wait for an admin future; True when it failed with the ``tolerate`` error code."""
    try:
        future.result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if tolerate is not None and isinstance(error, KafkaError) and error.code() == tolerate:
            log.debug("%s: %s (already done)", what, error.str())
            return True
        raise StackError(f"could not {what}: {error.str() if error else exc}") from exc
    return False


def _fmt(configs: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in configs.items())


def topic_states(config: SentioConfig, admin: AdminClient | None = None) -> list[TopicState]:
    """Live state of every catalog topic: existence, partitions, configs, total end offset."""
    from confluent_kafka import Consumer, TopicPartition

    from sentio_iot.kafka import consumer_config

    login = LoginRefusals()
    admin = admin or admin_client(config.kafka, error_cb=login, logger=login)
    existing = _describe_cluster(admin, config.kafka, login)
    settings = config.topics
    names = [s.topic(settings) for s in CATALOG if s.topic(settings) in existing]
    current = _current_configs(admin, names)
    consumer = Consumer(consumer_config(config.kafka, group_id="sentio-topics-list"))
    try:
        states = []
        for s in CATALOG:
            name = s.topic(settings)
            if name not in existing:
                states.append(TopicState(s, name, False, None, {}, None))
                continue
            ends = 0
            for p in range(existing[name]):
                ends += high_watermark(consumer, TopicPartition(name, p))
            wanted = s.kafka_configs()
            live = {k: current.get(name, {}).get(k, "?") for k in wanted}
            states.append(TopicState(s, name, True, existing[name], live, ends))
        return states
    finally:
        consumer.close()


_LEADERSHIP_ERRORS = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def high_watermark(consumer: Any, partition: Any) -> int:
    """The partition's end offset; a fresh topic may need a moment to elect its leader."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            _, high = consumer.get_watermark_offsets(partition, timeout=TIMEOUT_S)
            return int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and (
                error.retriable() or error.code() in _LEADERSHIP_ERRORS
            )
            if not retriable or time.monotonic() > deadline:
                raise ConnectError(f"cannot read offsets of {partition.topic}: {exc}") from exc
            time.sleep(0.2)
