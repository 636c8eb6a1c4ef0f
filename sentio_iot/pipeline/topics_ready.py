"""Wait for topics created a moment ago to be usable before reading their offsets."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from sentio_iot.errors import SentioError

ADMIN_TIMEOUT_S = 3.0
TOPIC_WAIT_S = 15.0


def wait_for_partitions(
    client: Consumer | AdminClient, topics: Sequence[str], timeout_s: float = TOPIC_WAIT_S
) -> dict[str, list[int]]:
    """Each topic's partitions, waiting while a topic created a moment ago is not yet known
    to the broker the client asks or its partitions have no leader yet (reading offsets
    would then fail with NOT_LEADER_FOR_PARTITION)."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, list[int]] = {}
    while True:
        for topic in topics:
            if topic not in found:
                metadata = client.list_topics(topic, timeout=ADMIN_TIMEOUT_S).topics.get(topic)
                if metadata is not None and metadata.error is None and metadata.partitions:
                    partitions = metadata.partitions.values()
                    if all(p.error is None and p.leader >= 0 for p in partitions) and (
                        _leaders_answer(client, topic, list(metadata.partitions))
                    ):
                        found[topic] = sorted(metadata.partitions)
        missing = [topic for topic in topics if topic not in found]
        if not missing:
            return found
        if time.monotonic() >= deadline:
            raise SentioError(
                f"topic(s) {', '.join(missing)} not ready after {timeout_s:g} s",
                fix="run: sentio topics apply",
            )
        time.sleep(0.2)


def _leaders_answer(client: Consumer | AdminClient, topic: str, partitions: list[int]) -> bool:
    """A consumer can ask each partition's leader for its offsets (an admin client cannot)."""
    if not isinstance(client, Consumer):
        return True
    try:
        for partition in partitions:
            client.get_watermark_offsets(TopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S)
    except KafkaException:
        return False
    return True
