"""Consumer lag per stage, from Kafka's admin API: how far each consumer group is behind."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from sentio_iot.config import SentioConfig
from sentio_iot.kafka import admin_client

ADMIN_TIMEOUT_S = 3.0


class ConsumerLag:
    """Lag (end offset minus committed offset, summed) of every active consumer group that
    commits on this configuration's topics; the stream workers and each sink are one each."""

    def __init__(self, config: SentioConfig) -> None:
        self.prefix = config.topics.prefix
        self.admin: AdminClient = admin_client(config.kafka)

    def measure(self) -> dict[str, int]:
        listed = self.admin.list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S)
        groups = [
            g.group_id
            for g in listed.result(ADMIN_TIMEOUT_S).valid
            if str(getattr(g.state, "name", g.state)) in ("STABLE", "COMPLETING_REBALANCE")
        ]
        committed: dict[str, list[TopicPartition]] = {}
        for group in groups:
            request = [ConsumerGroupTopicPartitions(group)]
            futures = self.admin.list_consumer_group_offsets(
                request, request_timeout=ADMIN_TIMEOUT_S
            )
            for future in futures.values():
                result = future.result(ADMIN_TIMEOUT_S)
                ours = [
                    tp
                    for tp in result.topic_partitions
                    if tp.topic.startswith(self.prefix) and tp.offset >= 0
                ]
                if ours:
                    committed[group] = ours
        if not committed:
            return {}
        wanted = {
            TopicPartition(tp.topic, tp.partition): OffsetSpec.latest()
            for tps in committed.values()
            for tp in tps
        }
        ends = {
            (tp.topic, tp.partition): future.result(ADMIN_TIMEOUT_S).offset
            for tp, future in self.admin.list_offsets(
                wanted, request_timeout=ADMIN_TIMEOUT_S
            ).items()
        }
        return {
            group: sum(
                max(0, ends.get((tp.topic, tp.partition), tp.offset) - tp.offset) for tp in tps
            )
            for group, tps in committed.items()
        }
