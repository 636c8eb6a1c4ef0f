"""What the benchmark measures from outside: commit latency per group, VictoriaMetrics
visibility of a probe device, and the bare confluent-kafka ceiling."""

from __future__ import annotations

import bisect
import json
import threading
import time

import httpx
from confluent_kafka import ConsumerGroupTopicPartitions, Producer

from benchmarks.e2e.load import SentLog
from sentio_iot.config import SentioConfig
from sentio_iot.kafka import admin_client
from sentio_iot.schemas.catalog import spec

POLL_S = 0.1
VM = "http://127.0.0.1:8428"


class CommitLatency:
    """Per group: (send time, latency) of each reading once the group committed past it."""

    def __init__(self, config: SentioConfig, sent: SentLog, groups: dict[str, str]) -> None:
        self.admin = admin_client(config.kafka)
        self.topic = spec("readings").topic(config.topics)
        self.sent = sent
        self.groups = groups  # label -> consumer group
        self.samples: dict[str, list[tuple[float, float]]] = {label: [] for label in groups}
        self._done: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(5)

    def between(self, label: str, since: float, until: float) -> list[float]:
        return [lat for at, lat in self.samples[label] if since <= at < until]

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            for label, group in self.groups.items():
                try:
                    self._poll(label, group)
                except Exception:  # the group may not exist yet
                    continue

    def _poll(self, label: str, group: str) -> None:
        request = [ConsumerGroupTopicPartitions(group)]
        futures = self.admin.list_consumer_group_offsets(request, request_timeout=2)
        now = time.time()
        for future in futures.values():
            for tp in future.result(2).topic_partitions:
                if tp.topic != self.topic or tp.offset < 0:
                    continue
                key = (label, tp.partition)
                before = self._done.get(key, 0)
                if tp.offset <= before:
                    continue
                self._done[key] = tp.offset
                with self.sent.lock:
                    log = self.sent.by_partition.get(tp.partition, [])
                    first = bisect.bisect_left(log, (before, 0.0))
                    last = bisect.bisect_left(log, (tp.offset, 0.0))
                    newly = log[first:last]
                self.samples[label].extend((at, now - at) for _, at in newly)


class VmProbe:
    """Reading → queryable in VictoriaMetrics, for one device's metric (export polled)."""

    def __init__(self, device: str, metric: str) -> None:
        self.query = f'sentio_{metric}{{device="{device}"}}'
        self.samples: list[tuple[float, float]] = []
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._http = httpx.Client(timeout=2)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(5)
        self._http.close()

    def between(self, since: float, until: float) -> list[float]:
        return [lat for at, lat in self.samples if since <= at < until]

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                answer = self._http.post(
                    f"{VM}/api/v1/export",
                    data={"match[]": self.query, "start": str(int(time.time()) - 120)},
                )
            except httpx.HTTPError:
                continue
            now = time.time()
            lines = answer.text.splitlines()
            stamps = sorted(ts for line in lines for ts in json.loads(line)["timestamps"])
            for ts in stamps:
                if ts > self._seen:
                    self._seen = ts
                    self.samples.append((ts / 1000, now - ts / 1000))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ceiling(config: SentioConfig, count: int) -> float:
    """Readings/s of bare confluent-kafka reading the readings and producing the same bytes."""
    from confluent_kafka import Consumer
    from confluent_kafka.admin import NewTopic

    source = spec("readings").topic(config.topics)
    target = f"{source}-ceiling"
    admin = admin_client(config.kafka)
    admin.create_topics([NewTopic(target, 6, 1)])[target].result(15)
    consumer = Consumer(
        {
            "bootstrap.servers": config.kafka.bootstrap_servers,
            "group.id": f"{source}-ceiling",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": config.kafka.bootstrap_servers, "linger.ms": 5})
    consumer.subscribe([source])
    done, first = 0, 0.0
    deadline = time.monotonic() + 120
    while done < count and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            if message.error():
                continue
            if not first:
                first = time.monotonic()
            producer.produce(target, message.value(), message.key())
            done += 1
        producer.poll(0)
    producer.flush(30)
    seconds = time.monotonic() - first
    consumer.close()
    return done / seconds if first and seconds > 0 else 0.0
