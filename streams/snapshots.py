"""Snapshots: some tables are written every few commits, and the readings since are replayed.

A commit writes every changed live state to its changelog (``state.py``) and waits until the
broker has it, while no batch runs. At 1 reading/s per device every device changes between
two commits, so each commit rewrites every device's whole state; with the ``novelty``
detector that is ~14 KB per device, most of what a commit sends (docs/benchmarks.md).

A *replayed* table is written only at a snapshot: every ``every`` commits per partition,
and every commit of a revoke or a stop. With its states it writes a marker, the next readings
offset the snapshot reflects (key ``\\x00next-offset/<partition>``, in that partition).
Between snapshots its changes stay in memory. A partition's first commit after this worker
caught it up writes no states: a table that has a marker keeps it (its changelog still holds
the states as of that marker, the replay starts there again), one without gets the offset it
was caught up to. The partitions' snapshots are then spread over the next ``every`` commits
(partition ``p`` first after ``every - p % every``), so that no commit writes every state of
every partition at once: at 10,000 devices such a commit took 22 s and cost the worker its
group membership (docs/benchmarks.md). A due snapshot also waits while the partition's
readings since its marker are fewer than ``per_state`` per state it would write (at most
``STRETCH`` times ``every`` commits): with many devices and few readings each, rewriting
every device's state saves a restart little replay.

After a start or a rebalance, before a partition's first batch reaches the steps,
the readings from the marker up to that batch's first offset are read again (read_committed,
as the worker reads them) and fed to the steps that own replayed tables, with their outputs
dropped: those were sent and committed already.

Why this is exactly once: a snapshot is written in the commit's transaction while no batch
is open (``commit_gate.py``), so its marker is the partition's committed offset at that
commit, and a partition's replayed table always holds its states as of its marker. Readings
from the marker to the committed offset are what one uninterrupted run would have fed the
steps since, so a step that is a deterministic function of the readings and its own state
(no wall clock, no ticks, no randomness, no other table) ends the replay holding exactly the
state that run would hold. A table without a marker was written at every commit (by an older
worker), or is new, and needs no replay; its changelog holds its states as of the offset the
partition was caught up to, and nothing of it is written before its first commit, which
writes that offset as its marker.

Only steps whose every table is replayed and which read no other topic are replayed
(:meth:`Snapshots.add`); their metrics count the replayed work again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from faust.types import TP

from sentio_iot.errors import DataError, TransientError
from sentio_iot.streams.faust_ext import Event, in_partition_of
from sentio_iot.streams.state import LiveStates

if TYPE_CHECKING:
    from sentio_iot.config import KafkaSettings
    from sentio_iot.streams.readings import ReadingStep

log = logging.getLogger(__name__)

MARKER_PREFIX = "\x00next-offset/"
REPLAY_CHUNK = 5000
# consume() waits this long for a whole chunk: a partition's last, short chunk costs one wait
# (0.5 s was most of a small partition's replay, six partitions one after the other).
REPLAY_WAIT_S = 0.05
REPLAY_TIMEOUT_S = 120.0
STRETCH = 6  # a due snapshot waits for readings at most this many times `every` commits

Record = dict[str, Any]


def marker_key(partition: int) -> bytes:
    """The key of a partition's marker (unique across partitions: the in-memory store has one
    dict for all of them)."""
    return f"{MARKER_PREFIX}{partition}".encode()


@dataclass(slots=True)
class ReplayMessage:
    """What the steps read of a replayed message (a Faust ``Message``'s fields they use)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass(eq=False)
class ReplayEvent:
    """A replayed reading as a step sees an event; never reaches Faust (writes are made in the
    partition of a real event, :meth:`Snapshots.flush`)."""

    message: ReplayMessage


# (topic, partition, start, end) -> chunks of the committed messages with start <= offset < end
RangeReader = Callable[[str, int, int, int], Iterator[list[ReplayMessage]]]


class Snapshots:
    """The replayed tables of the readings agent's steps, their snapshots and the catch-up."""

    def __init__(
        self,
        every: int,
        topic: str,
        read: RangeReader,
        decode: Callable[[bytes], Record],
        per_state: float = 0.0,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.every = every
        self.per_state = per_state
        self.topic = topic
        self.read = read
        self.decode = decode
        self._steps: list[tuple[ReadingStep, list[LiveStates[Any]]]] = []
        self._next: dict[int, int] = {}  # partition -> next readings offset to process
        self._last: dict[int, Event] = {}  # partition -> a real event of it (for writes)
        self._current: set[int] = set()  # partitions whose replayed states are up to date
        self._since: dict[int, int] = {}  # partition -> commits since its last snapshot
        # partition -> (the offset it was caught up to, its tables without a marker then)
        self._unmarked: dict[int, tuple[int, list[LiveStates[Any]]]] = {}
        self._base: dict[int, int] = {}  # partition -> the offset its changelogs reflect
        self.replayed = 0
        """Readings fed again to the steps since this worker started."""

    @property
    def tables(self) -> list[LiveStates[Any]]:
        return [live for _, tables in self._steps for live in tables]

    def add(self, step: ReadingStep, tables: Sequence[LiveStates[Any]]) -> bool:
        """Replay ``step`` and snapshot its ``tables`` when that is safe (see the module doc);
        False (nothing changes) for a step that reads another topic or owns no table."""
        if not tables or tuple(step.topics):
            return False
        self._steps.append((step, list(tables)))
        return True

    async def catch_up(self, events: Sequence[Event]) -> None:
        """Before the steps run ``events``: bring each partition not yet current up to its
        first reading in them, replaying from its marker."""
        if not self._steps:
            return
        first: dict[int, int] = {}
        for event in events:
            message = event.message
            if message.topic == self.topic and message.partition not in self._current:
                first.setdefault(message.partition, message.offset)
        for partition, offset in sorted(first.items()):
            await self._replay(partition, offset, events)
            self._current.add(partition)

    def processed(self, events: Sequence[Event]) -> None:
        """After the steps ran ``events``: the next offset of each readings partition."""
        for event in events:
            message = event.message
            if message.topic == self.topic:
                self._next[message.partition] = message.offset + 1
                self._last[message.partition] = event

    def flush(self, everything: bool = False) -> int:
        """In a commit: snapshot the partitions that are due (all when ``everything``: a
        revoke or a stop); how many records were written."""
        written = 0
        for partition in sorted(self._current):
            since = self._since.get(partition)
            event = self._last.get(partition)
            if event is None:
                continue  # no batch of it yet: nothing changed, nowhere to write
            if since is None and not everything:  # its first commit: markers only, then spread
                written += self._mark(partition, event)
                self._since[partition] = partition % self.every
                continue
            if everything or since is None or self._due(partition, since + 1):
                self._since[partition] = 0
                written += self._snapshot(partition, event)
            else:
                self._since[partition] = since + 1
        return written

    def forget(self, partitions: Iterable[int]) -> None:
        """A revoked partition starts again from its marker when it comes back."""
        for partition in partitions:
            self._current.discard(partition)
            for known in (self._next, self._last, self._since, self._base, self._unmarked):
                known.pop(partition, None)

    def _due(self, partition: int, commits: int) -> bool:
        """``commits`` since the last snapshot: enough, and enough readings per state?"""
        if commits < self.every:
            return False
        if self.per_state <= 0 or commits >= self.every * STRETCH:
            return True
        readings = self._next[partition] - self._base.get(partition, 0)
        states = max((live.dirty_in(partition) for live in self.tables), default=0)
        return readings >= self.per_state * states

    def _mark(self, partition: int, event: Event) -> int:
        """The tables of ``partition`` that had no marker when it was caught up get that
        offset as theirs (their changelog holds their states as of it); how many written."""
        offset, tables = self._unmarked.pop(partition, (0, []))
        with in_partition_of(event):
            for live in tables:
                live.table[marker_key(partition)] = str(offset).encode()
        return len(tables)

    def _snapshot(self, partition: int, event: Event) -> int:
        self._unmarked.pop(partition, None)
        written = 0
        for live in self.tables:
            written += live.flush_partition(partition, event)
        offset = self._next[partition]
        if written or self._base.get(partition) != offset:
            with in_partition_of(event):
                for live in self.tables:
                    live.table[marker_key(partition)] = str(offset).encode()
            written += len(self.tables)
        self._base[partition] = offset
        return written

    async def _replay(self, partition: int, end: int, events: Sequence[Event]) -> None:
        starts: list[tuple[ReadingStep, int]] = []
        unmarked: list[LiveStates[Any]] = []
        markers_of: list[int | None] = []
        for step, tables in self._steps:
            markers = [self._marker(live, partition, events) for live in tables]
            markers_of += markers
            unmarked += [live for live, m in zip(tables, markers, strict=True) if m is None]
            found = [m for m in markers if m is not None]
            if found and min(found) < end:
                starts.append((step, min(found)))
        self._unmarked[partition] = (end, unmarked)
        self._base[partition] = min((m for m in markers_of if m is not None), default=end)
        if not starts:
            return
        start = min(s for _, s in starts)
        t = time.perf_counter()
        count = 0
        chunks = self.read(self.topic, partition, start, end)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            count += len(chunk)
            await self._feed(chunk, starts)
        self.replayed += count
        log.info(
            "replayed %d reading(s) of partition %d (offsets %d-%d) in %.2f s",
            count,
            partition,
            start,
            end - 1,
            time.perf_counter() - t,
        )

    def _marker(self, live: LiveStates[Any], partition: int, events: Sequence[Event]) -> int | None:
        anchor = next(e for e in events if e.message.partition == partition)
        with in_partition_of(anchor):
            raw = live.table.get(marker_key(partition))
        return None if raw is None else int(raw)

    async def _feed(
        self, chunk: list[ReplayMessage], starts: list[tuple[ReadingStep, int]]
    ) -> None:
        from sentio_iot.streams.readings import ReadingBatch

        decoded: list[tuple[Event, Record]] = []
        for message in chunk:
            try:
                reading = self.decode(message.value or b"")
            except DataError:
                continue  # dead-lettered when it was first read
            decoded.append((cast(Event, ReplayEvent(message)), reading))
        for step, start in starts:
            batch = ReadingBatch(replayed=True)
            for event, reading in decoded:
                if event.message.offset >= start:
                    batch.add(event, reading)
            await step.process(batch)  # its outputs were sent before: batch.out is dropped


def kafka_range_reader(settings: KafkaSettings, group_id: str) -> RangeReader:
    """Read a range of a partition with confluent-kafka, read_committed (blocking: run it in a
    thread). Aborted records and transaction markers are skipped; the range ends at the
    consumer's position, so it ends even when its last offsets are markers."""

    def read(topic: str, partition: int, start: int, end: int) -> Iterator[list[ReplayMessage]]:
        from confluent_kafka import Consumer, TopicPartition

        from sentio_iot.kafka import consumer_config

        consumer = Consumer(consumer_config(settings, group_id))
        deadline = time.monotonic() + REPLAY_TIMEOUT_S
        try:
            consumer.assign([TopicPartition(topic, partition, start)])
            while True:
                chunk: list[ReplayMessage] = []
                for message in consumer.consume(REPLAY_CHUNK, timeout=REPLAY_WAIT_S):
                    if message.error() is not None:
                        raise TransientError(f"replaying {topic}[{partition}]: {message.error()}")
                    offset = message.offset()
                    if offset is None or offset >= end:
                        continue
                    _, ts = message.timestamp()
                    chunk.append(
                        ReplayMessage(
                            topic, partition, offset, ts / 1000, message.key(), message.value()
                        )
                    )
                if chunk:
                    yield chunk
                [position] = consumer.position([TopicPartition(topic, partition)])
                if position.offset >= end:
                    return
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"replaying {topic}[{partition}] {start}-{end - 1}: at {position.offset} "
                        f"after {REPLAY_TIMEOUT_S:.0f} s"
                    )
        finally:
            consumer.close()

    return read
