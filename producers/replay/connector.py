"""Replay a recorded series as device readings, at its original pace, N times faster, or flat out.

The file is read and parsed in ``connect()``: a missing or unreadable file is a ConfigError
there. ``run()`` first sends the lines that could not be parsed to the dead-letter topic (the
reason names the line), then emits every row when it is due: row ``r`` leaves
``(r.ts - first.ts) / speed`` seconds after the start. With ``timestamps: shifted`` every
timestamp moves by one offset so the first reading is stamped with the start time; the spacing
stays that of the file. ``run()`` returns when the file is done.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sentio_iot.errors import ConfigError
from sentio_iot.producers.connector import Connector, ConnectorContext, Emitter
from sentio_iot.producers.replay.config import ReplayConfig, ReplayFormat
from sentio_iot.producers.replay.formats import (
    Row,
    Series,
    detect_format,
    parse_cmapss,
    parse_nab,
    to_us,
)
from sentio_iot.records import Metric, Quality, Reading, now_us

log = logging.getLogger(__name__)

SOURCE = "replay"
YIELD_EVERY = 1000  # readings between two chances for other tasks when replaying flat out


def replay_offset_s(ts_us: int, first_us: int, speed: float) -> float:
    """Seconds after the start at which the reading stamped ``ts_us`` is due (speed 0: now)."""
    if speed == 0:
        return 0.0
    return (ts_us - first_us) / 1_000_000 / speed


def replay_ts_us(ts_us: int, first_us: int, start_us: int | None) -> int:
    """The timestamp a reading gets: the file's, or shifted so the first one is ``start_us``."""
    return ts_us if start_us is None else ts_us - first_us + start_us


def load_series(config: ReplayConfig) -> Series:
    """Read and parse the configured file; ConfigError when it cannot be read or recognised."""
    try:
        data = config.path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"replay file {config.path} cannot be read: {exc.strerror or exc}"
        ) from exc
    try:
        kind = detect_format(data) if config.format is ReplayFormat.AUTO else config.format
        if kind is ReplayFormat.NAB:
            return parse_nab(data, config.device_name(), config.metric, config.unit)
        return parse_cmapss(data, config.device_name(), to_us(config.cycle_origin), config.cycle_s)
    except ConfigError as exc:
        raise ConfigError(f"replay file {config.path}: {exc}") from exc


class ReplayConnector(Connector):
    """A recorded series (NAB, C-MAPSS) as readings, at original or N-times speed."""

    protocol = "replay"
    config: ReplayConfig

    def __init__(self, config: ReplayConfig, emit: Emitter, context: ConnectorContext) -> None:
        super().__init__(config, emit, context)
        self.series: Series | None = None
        self.labels = {**context.base_labels(), **config.labels}
        self.position = 0  # the next row to emit: a restarted run() goes on from here
        self._dead_lettered = False
        self._start_us: int | None = None  # what the first row is stamped with when shifted

    async def connect(self) -> None:
        if self.series is None:
            self.series = await asyncio.to_thread(load_series, self.config)
            log.info(
                "replay %s: %d readings, %d unreadable lines",
                self.config.path,
                len(self.series.rows),
                len(self.series.bad),
            )

    async def run(self) -> None:
        """Dead letters first, then every row when due; after a restart, from where it stopped."""
        if self.series is None:
            await self.connect()
        series = self.series
        assert series is not None
        origin = str(self.config.path)
        if not self._dead_lettered:
            for bad in series.bad:
                self.emit.dead_letter(bad.raw, bad.reason, origin=origin)
            self._dead_lettered = True
        if self.position >= len(series.rows):
            return
        first_us = series.rows[0].ts_us
        if self._start_us is None and self.config.timestamps == "shifted":
            self._start_us = now_us()
        resumed_at = replay_offset_s(series.rows[self.position].ts_us, first_us, self.config.speed)
        started = time.monotonic() - resumed_at
        unyielded = 0
        for row in series.rows[self.position :]:
            due = started + replay_offset_s(row.ts_us, first_us, self.config.speed)
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                unyielded = 0
            elif unyielded >= YIELD_EVERY:
                await asyncio.sleep(0)
                unyielded = 0
            self.emit.reading(self._reading(row, replay_ts_us(row.ts_us, first_us, self._start_us)))
            self.position += 1
            unyielded += 1
        log.info("replay %s done: %d readings", origin, len(series.rows))

    def _reading(self, row: Row, ts_us: int) -> Reading:
        assert self.series is not None
        series = self.series
        metrics = [
            Metric(name, value, unit, Quality.GOOD if value is not None else Quality.BAD)
            for name, unit, value in zip(series.metrics, series.units, row.values, strict=True)
        ]
        return Reading(row.device_id, ts_us, metrics, SOURCE, self.labels, row.seq)

    async def close(self) -> None:
        """Nothing to release: the file was read whole in connect()."""
