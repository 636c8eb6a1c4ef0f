"""Skip events this worker already processed: Faust can deliver a partition's events twice.

After a start or a rebalance, Faust's table recovery resumes the stream partitions and then
seeks them to their committed offsets (``faust.tables.recovery``): events fetched in between
reach the agents, and the seek delivers them again. Exactly-once state counts such an event
twice (seen by ``tests/faults/test_stream_worker_kill.py``: a one-minute window counted 12 of
10 readings; the same class of bug is faust-streaming issue #323). Within one assignment each
partition's events must come in offset order, so an event below the next offset this worker
expects from its partition was processed already: its effect is in the live state, and it is
acked again with its batch, which changes nothing.

After a revoke the partition's expectation is dropped with its live state (both start again
from the committed offset and the table).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from faust.types import TP

from sentio_iot.streams.faust_ext import Event

log = logging.getLogger(__name__)


class RedeliveryGuard:
    """The next offset expected per topic partition; older events are repeats."""

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}
        self.skipped = 0

    def fresh(self, events: Sequence[Event]) -> list[Event]:
        """The events not processed before, in order; remembers them as processed."""
        out: list[Event] = []
        skipped = 0
        expected = self._next
        for event in events:
            message = event.message
            tp = message.tp
            if message.offset < expected.get(tp, -1):
                skipped += 1
                continue
            expected[tp] = message.offset + 1
            out.append(event)
        if skipped:
            self.skipped += skipped
            log.warning("skipped %d event(s) delivered again (already processed)", skipped)
        return out

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self._next.pop(tp, None)
