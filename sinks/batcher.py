"""Batches of consumed records, closed by size or by age, with the offsets they cover.

Pure bookkeeping (no Kafka, no clock of its own): the runtime adds records and asks
``is_due(now)``; a closed batch knows, per partition, the next offset to commit once the
backend acknowledged it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sentio_iot.sinks.writer import SinkRecord


@dataclass
class Batch:
    """Records to write together, and the offsets (per topic/partition) they end at."""

    opened_at: float
    records: list[SinkRecord] = field(default_factory=list)
    # (topic, partition) -> next offset to commit: last offset taken (written or dead-lettered) + 1
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, record: SinkRecord) -> None:
        self.records.append(record)
        self.cover(record.topic, record.partition, record.offset)

    def cover(self, topic: str, partition: int, offset: int) -> None:
        """Count an offset as handled by this batch (a record written or dead-lettered)."""
        key = (topic, partition)
        if offset + 1 > self.next_offsets.get(key, -1):
            self.next_offsets[key] = offset + 1

    def __len__(self) -> int:
        return len(self.records)

    @property
    def empty(self) -> bool:
        """Nothing to write and nothing to commit."""
        return not self.records and not self.next_offsets


class Batcher:
    """Fills one batch at a time; it is due when it holds ``size`` records or is ``timeout_s`` old."""

    def __init__(self, size: int, timeout_s: float) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self.current: Batch | None = None

    def add(self, record: SinkRecord, now: float) -> None:
        self._open(now).add(record)

    def cover(self, topic: str, partition: int, offset: int, now: float) -> None:
        self._open(now).cover(topic, partition, offset)

    def is_due(self, now: float) -> bool:
        batch = self.current
        if batch is None or batch.empty:
            return False
        return len(batch) >= self.size or now - batch.opened_at >= self.timeout_s

    @property
    def empty(self) -> bool:
        """No batch open, or an open one with nothing to write or commit."""
        return self.current is None or self.current.empty

    def time_left(self, now: float) -> float:
        """Seconds until the open batch is due by age (the full timeout when none is open)."""
        if self.current is None or self.current.empty:
            return self.timeout_s
        return max(0.0, self.current.opened_at + self.timeout_s - now)

    def room(self) -> int:
        """Records the open batch can still take."""
        return self.size - (len(self.current) if self.current else 0)

    def take(self) -> Batch | None:
        """The open batch (closing it), or None when it holds nothing."""
        batch, self.current = self.current, None
        return None if batch is None or batch.empty else batch

    def drop_partitions(self, revoked: set[tuple[str, int]]) -> None:
        """Forget records of partitions this consumer lost: their new owner reads them again."""
        batch = self.current
        if batch is None:
            return
        batch.records = [r for r in batch.records if (r.topic, r.partition) not in revoked]
        for key in revoked:
            batch.next_offsets.pop(key, None)

    def _open(self, now: float) -> Batch:
        if self.current is None:
            self.current = Batch(opened_at=now)
        return self.current
