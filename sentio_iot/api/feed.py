"""Feeds the views from the derived topics: a consumer thread that never commits.

Partitions are assigned directly (no consumer group, nothing committed), each from where
its lookback starts (the compacted alerts topic from its beginning), so every start rebuilds
the views from Kafka. Records are decoded on this thread and handed to the event loop in
batches; ``ready`` is set once every partition has been read up to where it ended at start.

Kafka refusing the API's login or its ACLs (credentials rotated, an ACL deleted) is not an
outage: ``refused`` holds the one line that says who was refused what and the fix, logged
once at ERROR, and the worker's ``/health`` answers 503 with it. The API keeps serving what
it has (and VictoriaMetrics' history) and tries again every ``REFUSED_RETRY_S``: once the
credentials are mended the views start over from their lookback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sentio_iot.config import SentioConfig
from sentio_iot.errors import AccessRefused, DataError, TransientError

log = logging.getLogger(__name__)

# catalog name -> (view kind, Avro schema)
TOPICS = {
    "readings": ("readings", "Reading"),
    "anomalies": ("anomalies", "Anomaly"),
    "alerts": ("alerts", "Alert"),
    "rul": ("rul", "RulPrediction"),
    "device-events": ("device_events", "DeviceEvent"),
    "alert-commands": ("alert_commands", "AlertCommand"),  # the alerts' history
}
BATCH = 1000
POLL_S = 0.1
RETRY_S = 2.0
REFUSED_RETRY_S = 10.0
Batch = list[tuple[str, dict[str, Any]]]


class KafkaFeed:
    def __init__(
        self,
        config: SentioConfig,
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[Batch], None],
    ) -> None:
        self.config = config
        self.loop = loop
        self.on_batch = on_batch
        self.ready = threading.Event()
        self.records = 0
        self.skipped = 0
        self.refused: str | None = None
        self._said: str | None = None  # the refusal last logged
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def _run(self) -> None:
        """Consume until stopped; a failure (Kafka or the registry away at start) is retried:
        the views start over from their lookback, so nothing the topics hold is missed."""
        while not self._stop.is_set():
            try:
                self._consume()
            except AccessRefused as exc:
                line = str(exc)
                if line != self._said:  # once, until the views were rebuilt again
                    log.error(
                        "the views' Kafka feed: %s; retrying every %g s", line, REFUSED_RETRY_S
                    )
                self.refused = self._said = line
                self._stop.wait(REFUSED_RETRY_S)
            except Exception as exc:
                log.warning("the views' Kafka feed failed, retrying in %g s: %s", RETRY_S, exc)
                self._stop.wait(RETRY_S)

    def _consume(self) -> None:
        from confluent_kafka import Consumer

        from sentio_iot.kafka import ACCESS_REFUSED, LoginRefusals, access_refused, consumer_config
        from sentio_iot.pipeline.topics_ready import wait_for_partitions
        from sentio_iot.registry import SchemaRegistry
        from sentio_iot.schemas.catalog import spec
        from sentio_iot.serde import AvroSerde
        from sentio_iot.topic_admin import apply_topics

        config = self.config
        apply_topics(config, tuple(spec(name) for name in TOPICS))
        kinds = {spec(name).topic(config.topics): TOPICS[name] for name in TOPICS}
        settings = consumer_config(
            config.kafka, "sentio-api-views", **{"enable.auto.commit": False}
        )
        login = LoginRefusals(settings)
        consumer = Consumer({**settings, "error_cb": login, "logger": login})
        try:
            wait_for_partitions(consumer, list(kinds))
            ends = self._assign(consumer, list(kinds))
            with SchemaRegistry(config.schema_registry) as registry:
                serdes = {t: AvroSerde(registry, t, schema) for t, (_, schema) in kinds.items()}
                while not self._stop.is_set():
                    # poll waits for the first message only; consume(…, 0) takes what else
                    # is already here (consume alone would wait its timeout for a full batch)
                    first = consumer.poll(POLL_S)
                    if login.refused is not None:
                        raise login.refusal(login.bootstrap, login.user)
                    messages = [first, *consumer.consume(BATCH - 1, 0)] if first else []
                    batch: Batch = []
                    for message in messages:
                        error = message.error()
                        if error is not None and error.code() in ACCESS_REFUSED:
                            what = f"topic {message.topic()}" if message.topic() else "its topics"
                            raise access_refused(login.bootstrap, login.user, what, error)
                        if error or message.value() is None:
                            continue
                        topic = message.topic()
                        record = self._decode(serdes[topic], message.value())
                        if record is not None:
                            batch.append((kinds[topic][0], record))
                    if batch:
                        self.records += len(batch)
                        self.loop.call_soon_threadsafe(self.on_batch, batch)
                    if ends:  # rebuilding the views: at the start, and after a refusal
                        _drop_finished(consumer, ends)
                        if not ends:
                            self.refused = self._said = None  # every topic read: access is back
                            self.loop.call_soon_threadsafe(self.ready.set)
        finally:
            consumer.close()

    def _decode(self, serde: Any, value: bytes) -> dict[str, Any] | None:
        while not self._stop.is_set():
            try:
                record: dict[str, Any] = serde.decode(value)
                return record
            except DataError as exc:
                self.skipped += 1
                log.warning("record skipped by the views topic=%s reason=%s", serde.topic, exc)
                return None
            except TransientError as exc:
                log.warning("registry unreachable, retrying topic=%s reason=%s", serde.topic, exc)
                time.sleep(1.0)
        return None

    def _assign(self, consumer: Any, topics: list[str]) -> dict[tuple[str, int], int]:
        """Assign every partition from its lookback; return the ends to read up to."""
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

        views = self.config.api.views
        lookback = {
            "readings": views.readings_lookback_s,
            "anomalies": views.anomalies_lookback_s,
            "rul": views.events_lookback_s,
            "device_events": views.events_lookback_s,
            "alert_commands": views.events_lookback_s,
        }
        now_ms = int(time.time() * 1000)
        assignment: list[Any] = []
        ends: dict[tuple[str, int], int] = {}
        metadata = consumer.list_topics(timeout=10)
        prefix = self.config.topics.prefix
        for topic in topics:
            kind = TOPICS[topic.removeprefix(prefix)][0]
            highs: dict[int, int] = {}
            wanted = []
            for p in metadata.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    highs[p] = high
                since_ms = 0 if kind == "alerts" else now_ms - int(lookback[kind] * 1000)
                wanted.append(TopicPartition(topic, p, since_ms))
            for tp in consumer.offsets_for_times(wanted, timeout=10):
                start = tp.offset if tp.offset >= 0 else OFFSET_END
                if kind == "alerts":
                    start = OFFSET_BEGINNING
                assignment.append(TopicPartition(topic, tp.partition, start))
                if tp.partition in highs and (
                    kind == "alerts" or 0 <= tp.offset < highs[tp.partition]
                ):
                    ends[(topic, tp.partition)] = highs[tp.partition]
        consumer.assign(assignment)
        if not ends:
            self.refused = self._said = None
            self.loop.call_soon_threadsafe(self.ready.set)
        return ends


def _drop_finished(consumer: Any, ends: dict[tuple[str, int], int]) -> None:
    from confluent_kafka import TopicPartition

    for tp in consumer.position([TopicPartition(t, p) for t, p in list(ends)]):
        if tp.offset >= 0 and tp.offset >= ends[(tp.topic, tp.partition)]:
            ends.pop((tp.topic, tp.partition), None)
