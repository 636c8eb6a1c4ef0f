"""The rollups agent: readings -> tumbling-window Rollup records, exactly once.

A step of the readings agent (``readings.py``): each reading is folded into its device's
aggregator, kept live in memory (``state.py``) and written to the ``rollups`` table once per
commit; the windows its event time closed go to the rollups topic in the transaction of the
reading that closed them. Table changelog, output and source offsets commit in one Kafka
transaction per partition, so a restart or rebalance resumes from exactly the state of the
last commit: a window close is never lost and never repeated.

The state of a device is its whole :class:`~sentio_iot.streams.rollups.RollupAggregator`
(``to_state()`` JSON): open windows, watermark, what was already closed, late counters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sentio_iot.streams.app import StreamApp
from sentio_iot.streams.readings import ReadingBatch
from sentio_iot.streams.rollups import RollupAggregator
from sentio_iot.streams.state import dump_state, load_state

log = logging.getLogger(__name__)

AGENT = "rollups"


def restore(state: bytes | None, windows_s: Sequence[int], grace_s: int) -> RollupAggregator:
    """An aggregator from table bytes; a changed window configuration starts fresh windows."""
    if state is None:
        return RollupAggregator(windows_s, grace_s)
    agg = RollupAggregator.from_state(load_state(state))
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
    return dump_state(agg.to_state())


def attach(app: StreamApp) -> None:
    """Run the rollups step in the readings agent; declare its table and output schema."""
    settings = app.config.streams.rollups
    app.serde("rollups")
    app.add_reading_step(RollupsStep(app, settings.windows_s, settings.grace_s))


class RollupsStep:
    """Per batch: fold every reading into its device's aggregator, emit the closed windows."""

    name = AGENT
    topics: tuple[str, ...] = ()

    def __init__(self, app: StreamApp, windows_s: Sequence[int], grace_s: int) -> None:
        self.windows_s = tuple(windows_s)
        self.grace_s = grace_s
        self.states = app.live_states(
            "rollups",
            lambda raw: restore(raw, self.windows_s, self.grace_s),
            dump,
        )

    async def process(self, batch: ReadingBatch) -> None:
        states = self.states
        for event, reading in batch.readings:
            device_id = reading["device_id"]
            agg = states.get(device_id, event)
            if agg is None:
                agg = RollupAggregator(self.windows_s, self.grace_s)
            states.put(device_id, agg, event)
            closed = agg.add_reading(
                device_id, reading["ts"], reading["metrics"], reading["labels"]
            )
            for rollup in closed:
                batch.emit(AGENT, "rollups", device_id, rollup.to_record(), event)
