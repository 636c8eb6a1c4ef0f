"""The Faust stream application: one ``faust.App`` built from ``SentioConfig``, agents attach to it.

    app = StreamApp(config, agents=["rollups"])   # builds faust.App, imports and attaches agents
    app.prepare()                                  # registers output schemas, creates topics
    app.faust.main() / faust.Worker(app.faust)     # what `sentio stream worker` does

Nothing is built at import time: :class:`StreamApp` builds the app, and each agent module in
``streams/agents/<name>.py`` has ``attach(app: StreamApp) -> None`` declaring its tables and
agent functions on ``app.faust`` (see ``streams/agents/__init__.py`` for the pattern).

What every agent needs lives here: the catalog topics (:meth:`topic`), raw tables
(:meth:`table`), Avro decoding with the dead-letter fallback (:meth:`decode`), encoding and
sending (:meth:`send`), and the contract metrics (:attr:`metrics`), served with ``/health`` on
the Faust web port.

Tables are in memory (``store="memory://"``), rebuilt from their changelogs at each start: the
live states (``state.py``) already hold what the steps use, RocksDB only added a write per
state and seconds to every stop (closing its files), and its files could hold writes of
aborted transactions after a kill. The changelogs are compacted eagerly
(:data:`CHANGELOG_CONFIG`), so a start reads about one record per key, not the whole history.
The rollups, anomaly and RUL tables (:data:`REPLAYED_TABLES`) are written only every
``streams.snapshot_every_commits`` commits; after a restart the readings since are replayed
(``snapshots.py``).

Exactly once: ``processing_guarantee="exactly_once"`` gives one Kafka transaction per source
partition; offsets, table changelogs and output commit together. Faust picks the transaction
by the partition a record is sent to, so :meth:`send` writes to the SAME partition number as
the source message (every topic this app writes must have as many partitions as its sources;
:meth:`prepare` checks it). Keys are still the device id, and a device's readings always come
from one partition, so per-device order holds downstream.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP, TableT
from faust.web import Request, Response, View

from sentio_iot.config import SentioConfig
from sentio_iot.dead_letters import dead_letter_record
from sentio_iot.errors import ConfigError, DataError
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.settings.streams import AGENT_NAMES
from sentio_iot.streams import faust_ext
from sentio_iot.streams.commit_gate import CommitGate
from sentio_iot.streams.faust_ext import (
    SentioStream,
    SentioTable,
    SentioTableManager,
    SentioTransport,
)
from sentio_iot.streams.kafka_auth import faust_kafka_settings
from sentio_iot.streams.metrics import StreamMetrics
from sentio_iot.streams.monitor import QuietMonitor
from sentio_iot.streams.redelivery import RedeliveryGuard
from sentio_iot.streams.snapshots import Snapshots, kafka_range_reader
from sentio_iot.streams.state import LiveStates
from sentio_iot.streams.table_changes import TableChanges
from sentio_iot.streams.tracing import Headers

log = logging.getLogger(__name__)

Record = dict[str, Any]
TABLE_SIZE_EVERY_S = 10.0
COMMIT_EVERY_EVENTS = 100_000
# A commit rewrites every changed key: without these the active segment (1 GiB by default)
# would keep every version and a start would read them all. Only closed segments are
# compacted, so a start reads every version written since the last roll: at 1,000 devices
# the device states alone are 1,000 records per commit, 30,000 per minute (docs/benchmarks.md).
CHANGELOG_CONFIG = {
    "segment.bytes": str(32 * 1024 * 1024),
    "segment.ms": str(60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}
PRODUCER_BATCH_BYTES = 512 * 1024
PRODUCER_LINGER_S = 0.005
# Tables written only at snapshots, every streams.snapshot_every_commits per partition, the
# readings since replayed after a restart (snapshots.py). Their steps must be deterministic
# functions of the readings and their state: rollups, anomaly and RUL (due per reading, no
# model call in a replay) are; device_state reads ticks, so its table is written every commit.
REPLAYED_TABLES = ("rollups", "anomaly_devices", "rul")
Event = faust.EventT[Any]


class StreamApp:
    """One Faust application and what its agents share; build one per worker process."""

    def __init__(
        self,
        config: SentioConfig,
        *,
        agents: Sequence[str] | None = None,
        web_port: int | None = None,
    ) -> None:
        settings = config.streams
        self.config = config
        self.agent_names = check_agent_names(agents if agents is not None else settings.agents)
        self.web_port = web_port or settings.web_port
        self.metrics = StreamMetrics()
        self.datadir = state_dir_of(config, self.web_port)
        self.faust = faust.App(
            settings.app_id,
            broker=[
                f"kafka://{host.strip()}" for host in config.kafka.bootstrap_servers.split(",")
            ],
            processing_guarantee="exactly_once",
            store="memory://",
            datadir=str(self.datadir),
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=config.topics.partitions,
            topic_replication_factor=config.topics.replication_factor,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=settings.heartbeat_interval_s,
            broker_commit_interval=settings.commit_interval_s,
            # Commits follow the interval: each one rewrites every changed state, so commits
            # counted in events would multiply those writes at high rates.
            broker_commit_every=COMMIT_EVERY_EVENTS,
            broker_client_id=f"{config.kafka.client_id}-streams",
            # A commit sends every changed state at once (state.py): large batches and
            # compression cut the broker's work and the wait for its acks (docs/benchmarks.md).
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            producer_linger=PRODUCER_LINGER_S,
            producer_compression_type="lz4",
            web_host=settings.web_host,
            web_bind=settings.web_host,
            web_port=self.web_port,
            web_in_thread=False,
            # Faust's own pages would show any table's state to anyone (/table/<name>/<key>/)
            # and route requests between workers: only /health and /metrics are served.
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            # Faust compares a partition's persisted changelog offset with the highwater it
            # has fetched; right after a rebalance that highwater can still be -1, and the
            # check then crashes a healthy worker (seen when a second worker leaves).
            recovery_consistency_check=False,
            Monitor=QuietMonitor,
            Stream=SentioStream,
            Table=SentioTable,
            TableManager=SentioTableManager,
            autodiscover=False,
            # Security and kafka.extra mapped for aiokafka; what it cannot honour is refused.
            **faust_kafka_settings(config.kafka),
        )
        # Messages reach the streams without a wait_first per message (faust_ext.py).
        self.faust.transport = SentioTransport(
            self.faust.conf.broker_consumer,
            self.faust,
            fetch_max_wait_ms=round(settings.fetch_max_wait_s * 1000),
            fetch_min_bytes=settings.fetch_min_bytes,
        )
        self._topics: dict[str, faust.TopicT] = {}
        self._serdes: dict[str, AvroSerde] = {}
        self._tables: dict[str, TableT[bytes, bytes]] = {}
        self._changes = TableChanges()
        self._live: list[LiveStates[Any]] = []
        self._reading_steps: list[Any] = []
        self._claimed = 0  # live states already owned by an added reading step
        self._ended = False  # a commit ended the transactions (the stop)
        self.snapshots = Snapshots(
            settings.snapshot_every_commits,
            self.topic_name("readings"),
            kafka_range_reader(config.kafka, f"{settings.app_id}-replay"),
            lambda raw: self.serde("readings").decode(raw),
            per_state=settings.snapshot_readings_per_state,
        )
        self._registry: SchemaRegistry | None = None
        self._internal: dict[str, int] = {}
        self.gate = CommitGate()
        self.guard = RedeliveryGuard()
        self._sizes: list[tuple[tuple[str, ...], float]] = []
        self._sizes_at = -TABLE_SIZE_EVERY_S
        self._install_pages()
        self.metrics.gauge_source(self.metrics.lag, self._lag)
        self.metrics.gauge_source(self.metrics.table_keys, self._table_sizes)
        self.faust.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        for name in self.agent_names:
            _agent_module(name).attach(self)
        if self._reading_steps:
            from sentio_iot.streams.readings import attach_readings_agent

            attach_readings_agent(self, self._reading_steps)

    # -- start-up -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Before the worker starts: create missing catalog topics, register every schema used."""
        from sentio_iot.topic_admin import apply_topics

        used = tuple(spec(name) for name in sorted(set(self._topics) | set(self._serdes)))
        self.datadir.mkdir(parents=True, exist_ok=True)
        apply_topics(self.config, used)
        self._create_internal_topics()
        self._check_partitions()
        registry = self._open_registry()
        for serde in self._serdes.values():
            serde.registry = registry
            serde.register()
        log.info(
            "stream app ready id=%s agents=%s web_port=%d datadir=%s",
            self.faust.conf.id,
            ",".join(self.agent_names),
            self.web_port,
            self.datadir,
        )

    def close(self) -> None:
        """After the worker stopped: say whether everything processed was committed."""
        if not self.gate.consistent:
            log.warning("stopped before a commit succeeded: the next worker redoes that work")
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    # -- what agents use ----------------------------------------------------------------------

    def topic(self, catalog_name: str) -> faust.TopicT:
        """The Faust topic of a catalog entry (raw bytes in and out), declared once."""
        found = self._topics.get(catalog_name)
        if found is None:
            entry = spec(catalog_name)
            found = self._topics[catalog_name] = self.faust.topic(
                entry.topic(self.config.topics),
                partitions=entry.partitions(self.config.topics),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
            )
        return found

    def table(self, name: str, *, source: str = "readings") -> TableT[bytes, bytes]:
        """An in-memory table with a compacted Kafka changelog, partitioned like the ``source`` catalog topic.

        Keys and values are bytes; the agent chooses the encoding (JSON state dicts, usually).
        Changelog topic: ``<app id>-<name>-changelog``.
        """
        table: TableT[bytes, bytes] = self.faust.Table(
            name,
            default=None,
            partitions=spec(source).partitions(self.config.topics),
            key_type=bytes,
            value_type=bytes,
            extra_topic_configs=CHANGELOG_CONFIG,
        )
        cast(SentioTable, table).changes = self._changes
        self._tables[name] = table
        return table

    def live_states(
        self,
        name: str,
        load: Callable[[bytes], Any],
        dump: Callable[[Any], bytes],
        *,
        source: str = "readings",
    ) -> LiveStates[Any]:
        """A table whose states live in memory and are written once per key per commit
        (see ``state.py``): the way per-reading steps keep state."""
        live: LiveStates[Any] = LiveStates(self.table(name, source=source), load, dump)
        self._live.append(live)
        return live

    def add_reading_step(self, step: Any) -> None:
        """Run ``step`` (a ``readings.ReadingStep``) in the one agent that reads ``readings``:
        each message is fetched, decoded and traced once for all the per-reading steps.

        The live states created since the previous step belong to ``step``; when all of them
        are in :data:`REPLAYED_TABLES` they are written only at snapshots (``snapshots.py``)."""
        owned, self._claimed = self._live[self._claimed :], len(self._live)
        self._reading_steps.append(step)
        if all(live.name in REPLAYED_TABLES for live in owned) and self.snapshots.add(step, owned):
            for live in owned:
                live.replayed = True

    def internal_topic_name(self, name: str, *, partitions_like: str = "readings") -> str:
        """An app-private topic ``<app id>-<name>`` with as many partitions as the catalog
        topic ``partitions_like``, created by :meth:`prepare` (retention one hour)."""
        topic = f"{self.faust.conf.id}-{name}"
        self._internal[topic] = spec(partitions_like).partitions(self.config.topics)
        return topic

    def serde(self, catalog_name: str) -> AvroSerde:
        """The AvroSerde of a catalog topic; registered by :meth:`prepare` before the worker runs."""
        found = self._serdes.get(catalog_name)
        if found is None:
            entry = spec(catalog_name)
            if entry.value_schema is None:
                raise ConfigError(f"topic {catalog_name} carries no Avro values")
            found = self._serdes[catalog_name] = AvroSerde(
                self._registry, entry.topic(self.config.topics), entry.value_schema
            )
        return found

    async def decode(self, agent: str, event: Event, catalog_name: str) -> Record | None:
        """The event's value decoded with the catalog topic's schema; None when it went to the
        dead-letter topic (poison data is never retried and never stops the agent)."""
        try:
            return self.serde(catalog_name).decode(event.message.value or b"")
        except DataError as exc:
            await self.dead_letter(agent, event, exc)
            return None

    async def dead_letter(self, agent: str, event: Event, error: Exception) -> None:
        """Send the original message and the reason to the dead-letter topic, then go on."""
        message = event.message
        record = dead_letter_record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            error=str(error) or type(error).__name__,
            error_type=type(error).__name__,
            stage=f"streams.{agent}",
            headers=_header_pairs(message.headers),
        )
        log.warning(
            "dead-lettered agent=%s topic=%s partition=%d offset=%d reason=%s",
            agent,
            message.topic,
            message.partition,
            message.offset,
            record["error"],
        )
        await self.send(agent, "deadletter", message.key, record, source=event)
        self.metrics.deadletter.inc(agent)

    async def send(
        self,
        agent: str,
        catalog_name: str,
        key: str | bytes | None,
        record: Mapping[str, Any],
        *,
        source: Event | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Encode ``record`` for the catalog topic and send it in the transaction of ``source``.

        ``source`` (default: the event being processed) is the message this record follows
        from: the record goes to the same partition number, through the transactional
        producer of that source partition, so it commits (or aborts) with the source offsets
        and the table changes (see the module doc).
        """
        if source is None:
            source = faust.current_event()
            if source is None:
                raise RuntimeError("send() outside an event needs source=")
        message = source.message
        value = self.serde(catalog_name).encode(record)
        raw_key = key.encode() if isinstance(key, str) else key
        group = self.faust.assignor.group_for_topic(message.topic)
        await self.faust.producer.send(
            self.topic_name(catalog_name),
            raw_key,
            value,
            message.partition,
            None,
            headers or None,
            transactional_id=f"{self.faust.conf.id}-{group}-{message.partition}",
        )
        self.metrics.emitted.inc(agent, catalog_name)

    def topic_name(self, catalog_name: str) -> str:
        """The Kafka topic of a catalog entry under this deployment's prefix."""
        return spec(catalog_name).topic(self.config.topics)

    async def batches(
        self,
        stream: faust.StreamT[Any],
        max_events: int | None = None,
        within_s: float | None = None,
    ) -> AsyncIterator[list[Event]]:
        """Batches of events (``streams.batch_max`` / ``batch_within_s``), exactly once.

        Use this, not ``stream.take_events`` or ``stream.events()``: between a batch's first
        write and the ack of its last event no commit happens (see ``commit_gate.py``), and the
        table changes are handed to the transaction before the batch counts as done.
        """
        settings = self.config.streams
        self._install_gate()
        gate = self.gate
        spent = self.metrics.seconds
        faust_stream = cast(SentioStream, stream)
        remaining = 0

        async def acked() -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                await gate.close_batch()

        faust_stream.on_acked = acked  # take_events acks every event through the stream
        taken = faust_stream.take_events(
            max_events or settings.batch_max, within=within_s or settings.batch_within_s
        )
        async for events in taken:
            t_wait = time.perf_counter()
            await gate.open_batch()
            spent.inc("wait_for_commit", by=time.perf_counter() - t_wait)
            remaining = len(events)
            if isinstance(self.faust.monitor, QuietMonitor):
                self.faust.monitor.batch_in({event.message.tp for event in events})
            try:
                t_body = time.perf_counter()
                await self._recovered()
                yield self.guard.fresh(events)  # all of them are acked: the repeats again
                t_flush = time.perf_counter()
                spent.inc("process_batch", by=t_flush - t_body)
                await self._changes.acknowledged()  # in the transaction before any ack
                spent.inc("flush_table_changes", by=time.perf_counter() - t_flush)
            except BaseException:
                gate.poison("a batch was interrupted before its events were acked")
                raise

    async def _recovered(self) -> None:
        """Hold a batch until the tables are recovered: state read before would be stale."""
        recovery = getattr(self.faust.tables, "recovery", None)
        if recovery is None or recovery.completed.is_set():
            return
        log.info("a batch came before table recovery completed: waiting for it")
        try:
            async with asyncio.timeout(self.config.streams.session_timeout_s):
                await recovery.completed.wait()
        except TimeoutError:
            log.warning("table recovery still not complete: processing the batch anyway")

    def _install_gate(self) -> None:
        consumer = self.faust.consumer
        gate = self.gate

        async def commit(
            plain: Callable[..., Awaitable[bool]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> bool:
            t = time.perf_counter()
            try:
                return await gate.commit(lambda: self._flush_and_commit(plain, args, kwargs), False)
            except Exception as exc:
                # What was not committed aborts; the next worker resumes from the last commit.
                gate.poison(f"a commit failed: {type(exc).__name__}: {exc}")
                if not consumer.should_stop:
                    raise
                return False  # stopping: raising here would leave the consumer half-stopped
            finally:
                self.metrics.seconds.inc("commit", by=time.perf_counter() - t)

        faust_ext.gate_commits(consumer, commit)

    async def _flush_and_commit(
        self, plain: Callable[..., Awaitable[bool]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bool:
        """Write the live states' changes into the open transactions, wait until the broker
        has them, then commit (offsets, changes and output together)."""
        spent = self.metrics.seconds
        if self._ended:  # the stop's last commit ended the transactions: nothing can join them
            return await plain(*args, **kwargs)
        # Faust's stop commits with start_new_transaction=False (then may commit again);
        # a revoke commits while rebalancing: both snapshot everything (snapshots.py).
        ending = kwargs.get("start_new_transaction") is False
        t = time.perf_counter()
        written = sum(live.flush() for live in self._live if not live.replayed)
        everything = ending or self.faust.rebalancing or self.faust.consumer.should_stop
        written += self.snapshots.flush(everything=everything)
        t_sent = time.perf_counter()
        spent.inc("flush_live_states", by=t_sent - t)
        await self._changes.acknowledged()
        t_acked = time.perf_counter()
        spent.inc("wait_state_acks", by=t_acked - t_sent)
        self.metrics.state_writes.inc(by=written)
        try:
            return await plain(*args, **kwargs)
        finally:
            self._ended = ending
            spent.inc("commit_transactions", by=time.perf_counter() - t_acked)

    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        """After the revoke's commit flushed them: forget the states of partitions gone."""
        partitions = {tp.partition for tp in revoked if tp.topic == self.topic_name("readings")}
        self.guard.forget(revoked)
        self.snapshots.forget(partitions)
        for live in self._live:
            live.forget(partitions)
        # What the revoke's commit wrote may have aborted; recovery brings back what committed.
        numbers = {tp.partition for tp in revoked}
        for table in self._tables.values():
            if isinstance(table, SentioTable):
                table.forget_partitions(numbers)

    @contextmanager
    def in_partition_of(self, event: Event) -> Iterator[None]:
        """Make ``event`` the current one, so table writes inside go to its partition.

        Faust picks a table's partition (RocksDB file and changelog partition) from the
        current event; a batch from ``stream.take_events`` holds events of several
        partitions, so write each key inside the event it came from.
        """
        with faust_ext.in_partition_of(event):
            yield

    # -- internals ----------------------------------------------------------------------------

    def _open_registry(self) -> SchemaRegistry:
        if self._registry is None:
            self._registry = SchemaRegistry(self.config.schema_registry)
        return self._registry

    def _create_internal_topics(self) -> None:
        from confluent_kafka.admin import NewTopic

        from sentio_iot.kafka import admin_client

        if not self._internal:
            return
        admin = admin_client(self.config.kafka)
        existing = set(admin.list_topics(timeout=15).topics)
        wanted = [
            NewTopic(
                topic,
                partitions,
                self.config.topics.replication_factor,
                config={"retention.ms": str(3600 * 1000)},
            )
            for topic, partitions in self._internal.items()
            if topic not in existing
        ]
        for topic, future in admin.create_topics(wanted).items() if wanted else ():
            try:
                future.result(15)
            except Exception as exc:  # created meanwhile by another worker: fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
            log.info("internal topic created topic=%s", topic)

    def _check_partitions(self) -> None:
        used = set(self._topics) | set(self._serdes)
        counts = {name: spec(name).partitions(self.config.topics) for name in used}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{name}={n}" for name, n in sorted(counts.items()))
            raise ConfigError(
                "the stream app's topics must have equal partition counts (exactly-once "
                f"sends to the source partition): {listed}",
                [f"topics.partition_overrides: make these equal: {listed}"],
            )

    def _install_pages(self) -> None:
        app = self

        async def health(view: View, request: Request) -> Response:
            ready = app.ready()
            return view.json({"ready": ready}, status=200 if ready else 503)

        async def metrics(view: View, request: Request) -> Response:
            return view.text(app.metrics.render(), content_type="text/plain")

        self.faust.page("/health")(health)
        self.faust.page("/metrics")(metrics)

    def ready(self) -> bool:
        """Started, not rebalancing, tables recovered, and still able to commit (an agent that
        crashed in a batch stops all commits: the worker must be restarted)."""
        fapp = self.faust
        if not fapp.started or fapp.rebalancing or self.gate.poisoned:
            return False
        recovery = getattr(fapp.tables, "recovery", None)
        return recovery is None or bool(recovery.completed.is_set())

    def _lag(self) -> list[tuple[tuple[str, ...], float]]:
        consumer = self.faust.consumer
        rows: list[tuple[tuple[str, ...], float]] = []
        internal = f"{self.faust.conf.id}-"  # changelogs, the assignor's topic, ticks
        for tp in sorted(consumer.assignment()):
            if tp.topic.startswith(internal):
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = faust_ext.read_offset(consumer, tp)
            behind = highwater - (position + 1 if position is not None else 0)
            rows.append(((tp.topic, str(tp.partition)), float(max(behind, 0))))
        return rows

    def _table_sizes(self) -> list[tuple[tuple[str, ...], float]]:
        # Counting keys walks every RocksDB file: at most once per TABLE_SIZE_EVERY_S.
        now = time.monotonic()
        if now - self._sizes_at >= TABLE_SIZE_EVERY_S:
            self._sizes = [((name,), float(len(t))) for name, t in sorted(self._tables.items())]
            self._sizes_at = now
        return self._sizes


def check_agent_names(names: Sequence[str]) -> tuple[str, ...]:
    """The agent names, validated: unknown ones fail naming those that exist."""
    unknown = [n for n in names if n not in AGENT_NAMES]
    if unknown:
        raise ConfigError(
            f"unknown stream agent(s): {', '.join(unknown)}",
            [f"streams.agents: {n!r} is not one of: {', '.join(AGENT_NAMES)}" for n in unknown],
        )
    if not names:
        raise ConfigError("no stream agents to run", ["streams.agents: name at least one"])
    return tuple(dict.fromkeys(names))


def _agent_module(name: str) -> Any:
    try:
        return importlib.import_module(f"sentio_iot.streams.agents.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"sentio_iot.streams.agents.{name}":
            raise
        raise ConfigError(
            f"stream agent {name} is not installed",
            [f"streams.agents: {name!r} has no module sentio_iot.streams.agents.{name}"],
        ) from exc


def _header_pairs(headers: Any) -> list[tuple[str, bytes | None]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), None if v is None else bytes(v)) for k, v in items]


def state_dir_of(config: SentioConfig, web_port: int) -> Path:
    """Where a worker on ``web_port`` keeps its RocksDB tables."""
    return config.streams.state_dir / config.streams.app_id / f"worker-{web_port}"
