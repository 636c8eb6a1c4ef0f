"""Consumer lag per stage, from Kafka's admin API: how far each consumer group is behind."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from sentio_iot.config import SentioConfig
from sentio_iot.kafka import admin_client

ADMIN_TIMEOUT_S = 3.0
ACTIVE = ("STABLE", "COMPLETING_REBALANCE")
TREND_WINDOW_S = 30.0
STEADY_PER_S = 5.0  # commits move a healthy stage's lag by a few messages/s either way


class ConsumerLag:
    """Lag (end offset minus committed offset, summed) of every active consumer group that
    commits on this configuration's topics; the stream workers and each sink are one each."""

    def __init__(self, config: SentioConfig) -> None:
        self.prefix = config.topics.prefix
        self.admin: AdminClient = admin_client(config.kafka)

    def measure(self, *, idle: bool = False) -> dict[str, int]:
        """Lag per group; ``idle``: also groups with no member now (what an earlier run left)."""
        committed = self.committed((*ACTIVE, "EMPTY") if idle else ACTIVE)
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

    def committed(self, states: tuple[str, ...] | None) -> dict[str, list[TopicPartition]]:
        """The committed offsets on this prefix's topics of every group in ``states`` (None:
        in any state) that has some."""
        listed = self.admin.list_consumer_groups(request_timeout=ADMIN_TIMEOUT_S)
        groups = [
            g.group_id
            for g in listed.result(ADMIN_TIMEOUT_S).valid
            if states is None or str(getattr(g.state, "name", g.state)) in states
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
        return committed


@dataclass(frozen=True)
class Trend:
    """How a group's lag moves: messages/s (negative: catching up) and when it reaches 0."""

    per_s: float
    eta_s: float | None  # None: not falling

    def describe(self) -> str:
        if self.eta_s is not None:
            return f"falling {-self.per_s:,.0f}/s, caught up in ~{self.eta_s:,.0f} s"
        if self.per_s > STEADY_PER_S:
            return f"growing {self.per_s:,.0f}/s"
        return "steady"


class LagTrend:
    """The lag of each group over the last ``TREND_WINDOW_S``: its rate of change and ETA."""

    def __init__(self, window_s: float = TREND_WINDOW_S) -> None:
        self.window_s = window_s
        self._seen: dict[str, deque[tuple[float, int]]] = {}

    def observe(self, lags: dict[str, int], at: float) -> None:
        for group, lag in lags.items():
            history = self._seen.setdefault(group, deque())
            if history and history[-1][0] == at:
                continue
            history.append((at, lag))
            while history and at - history[0][0] > self.window_s:
                history.popleft()

    def trend(self, group: str) -> Trend | None:
        history = self._seen.get(group)
        if not history or len(history) < 2 or history[-1][0] - history[0][0] <= 0:
            return None
        (t0, lag0), (t1, lag1) = history[0], history[-1]
        per_s = (lag1 - lag0) / (t1 - t0)
        eta = lag1 / -per_s if per_s < 0 and lag1 > 0 else None
        return Trend(per_s, eta)
