"""The rollups agent: readings -> tumbling-window Rollup records, exactly once.

Per batch of readings (``stream.take_events``), each device's aggregator is read from the
``rollups`` table once, fed every metric of the batch, and written back once; the windows its
event time closed go to the rollups topic. Table changelog, output and source offsets commit in
one Kafka transaction per partition, so a restart or rebalance resumes from exactly the state
of the last commit: a window close is never lost and never repeated.

The state of a device is its whole :class:`~sentio_iot.streams.rollups.RollupAggregator`
(``to_state()`` JSON): open windows, watermark, what was already closed, late counters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import faust

from sentio_iot.streams.app import Event, Record, StreamApp
from sentio_iot.streams.rollups import Rollup, RollupAggregator
from sentio_iot.streams.tracing import batch_span, context_headers

log = logging.getLogger(__name__)

AGENT = "rollups"


class RollupBatch:
    """One batch of decoded readings folded into per-device aggregators (pure, no Kafka)."""

    def __init__(self, windows_s: Sequence[int], grace_s: int) -> None:
        self.windows_s = tuple(windows_s)
        self.grace_s = grace_s
        self.aggregators: dict[str, RollupAggregator] = {}
        self.closed: list[Rollup] = []

    def load(self, device_id: str, state: bytes | None) -> RollupAggregator:
        """The device's aggregator: from its stored state, or new."""
        agg = self.aggregators.get(device_id)
        if agg is None:
            agg = self.aggregators[device_id] = restore(state, self.windows_s, self.grace_s)
        return agg

    def add(self, agg: RollupAggregator, reading: Record) -> None:
        device_id = reading["device_id"]
        ts = reading["ts"]
        labels = reading["labels"]
        for metric in reading["metrics"]:
            closed = agg.add(device_id, metric["name"], ts, metric["value"], metric["unit"], labels)
            if closed:
                self.closed.extend(closed)


def restore(state: bytes | None, windows_s: Sequence[int], grace_s: int) -> RollupAggregator:
    """An aggregator from table bytes; a changed window configuration starts fresh windows."""
    if state is None:
        return RollupAggregator(windows_s, grace_s)
    agg = RollupAggregator.from_state(json.loads(state))
    if agg.windows_s != tuple(windows_s) or agg.grace_s != grace_s:
        log.warning(
            "rollup windows changed (%s grace %d -> %s grace %d): open windows are dropped",
            agg.windows_s,
            agg.grace_s,
            tuple(windows_s),
            grace_s,
        )
        return RollupAggregator(windows_s, grace_s)
    return agg


def dump(agg: RollupAggregator) -> bytes:
    return json.dumps(agg.to_state(), separators=(",", ":")).encode()


def attach(app: StreamApp) -> None:
    """Declare the ``rollups`` table and agent on ``app``."""
    settings = app.config.streams
    windows_s = settings.rollups.windows_s
    grace_s = settings.rollups.grace_s
    table = app.table("rollups")
    app.serde("readings")
    app.serde("rollups")
    app.serde("deadletter")

    async def rollups(stream: faust.StreamT[bytes]) -> None:
        async for events in app.batches(stream):
            await process_batch(app, table, events, windows_s, grace_s)

    app.faust.agent(app.topic("readings"), name=f"sentio.{AGENT}")(rollups)


async def process_batch(
    app: StreamApp,
    table: Any,
    events: Sequence[Event],
    windows_s: Sequence[int],
    grace_s: int,
) -> None:
    """Fold a batch in, write each touched device once, send the closed windows."""
    batch = RollupBatch(windows_s, grace_s)
    last_event: dict[str, Event] = {}
    with batch_span(AGENT, (e.message.headers for e in events)) as span:
        for event in events:
            reading = await app.decode(AGENT, event, "readings")
            if reading is None:
                continue
            device_id = reading["device_id"]
            if device_id not in batch.aggregators:
                with app.in_partition_of(event):
                    stored = table.get(device_id.encode())
                batch.load(device_id, stored)
            batch.add(batch.aggregators[device_id], reading)
            last_event[device_id] = event
        for device_id, agg in batch.aggregators.items():
            with app.in_partition_of(last_event[device_id]):
                table[device_id.encode()] = dump(agg)
        headers = context_headers(span)
        span.set_attribute("sentio.rollups.closed", len(batch.closed))
        for rollup in batch.closed:
            await app.send(
                AGENT,
                "rollups",
                rollup.device_id,
                rollup.to_record(),
                source=last_event[rollup.device_id],
                headers=headers,
            )
    app.metrics.events.inc(AGENT, by=len(events))  # after the batch: benchmarks count done work
