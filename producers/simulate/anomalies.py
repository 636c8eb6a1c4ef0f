"""Injected anomalies and the ground truth that says where they are.

Each device has one :class:`AnomalySchedule`: anomalies arrive as a Poisson process in plant
time (``anomaly_rate`` per hour), one at a time per device, on one metric each. All times are
ticks (the n-th reading of the device), so the schedule depends on the seed only, never on
how fast readings are published. What is injected:

- ``spike``: one reading above the metric's normal range (by one to two range widths);
- ``level_shift``: a constant offset of half to one range width, up or down, over a window;
- ``drift``: an offset growing linearly to half to 1.5 range widths at the end of the window;
- ``stuck``: the sensor repeats the value it had when the window began.

The ground truth is one row per injected anomaly, machine failure and degradation period,
written as CSV (``.csv``) or JSON lines (anything else) with ``device, metric, kind,
start_ts, end_ts`` (ISO 8601 UTC, inclusive) plus ``start_us, end_us, magnitude, rul_s``.
A row is written when its anomaly or degradation begins, so its end may lie beyond the last
reading of a simulation that stops inside the window.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sentio_iot.errors import ConfigError
from sentio_iot.producers.simulate.config import AnomalyKind

GROUND_TRUTH_FIELDS = (
    "device",
    "metric",
    "kind",
    "start_ts",
    "end_ts",
    "start_us",
    "end_us",
    "magnitude",
    "rul_s",
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_utc(ts_us: int) -> str:
    """``2024-01-01T00:00:00.000000Z`` for a timestamp in microseconds."""
    return (EPOCH + timedelta(microseconds=ts_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class Anomaly:
    """One injected anomaly on one metric of one device, from ``start_tick`` to ``end_tick``."""

    kind: AnomalyKind
    metric: int
    start_tick: int
    end_tick: int  # inclusive
    magnitude: float  # offset (spike, level shift), final offset (drift); 0 for stuck
    stuck_value: float | None = None

    def apply(self, value: float, tick: int) -> float:
        """The value the sensor reports at ``tick`` (inside the window) instead of ``value``."""
        if self.kind is AnomalyKind.DRIFT:
            done = (tick - self.start_tick + 1) / (self.end_tick - self.start_tick + 1)
            return value + self.magnitude * done
        if self.kind is AnomalyKind.STUCK:
            if self.stuck_value is None:
                self.stuck_value = value
            return self.stuck_value
        return value + self.magnitude


class AnomalySchedule:
    """When and where one device's next anomaly happens, drawn from its own random stream."""

    def __init__(
        self,
        rng: random.Random,
        *,
        per_tick: float,
        kinds: dict[AnomalyKind, float],
        min_ticks: int,
        max_ticks: int,
        range_widths: list[float],
    ) -> None:
        self._rng = rng
        self._per_tick = per_tick
        self._kinds = [k for k, w in kinds.items() if w > 0]
        self._weights = [kinds[k] for k in self._kinds]
        self._min_ticks = min_ticks
        self._max_ticks = max_ticks
        self._widths = range_widths
        self.active: Anomaly | None = None
        self._next_start = self._after(-1)

    def _after(self, tick: int) -> int | None:
        """The tick the next anomaly starts at, at least one tick after ``tick``."""
        if self._per_tick <= 0:
            return None
        gap = self._rng.expovariate(self._per_tick)
        return tick + 1 + min(int(gap), 2**62)

    def at(self, tick: int) -> tuple[Anomaly | None, bool]:
        """The anomaly active at ``tick`` (called once per tick, in order) and whether it is new."""
        if self.active is not None and tick > self.active.end_tick:
            self._next_start = self._after(self.active.end_tick)
            self.active = None
        if self.active is None and self._next_start is not None and tick >= self._next_start:
            self.active = self._draw(tick)
            return self.active, True
        return self.active, False

    def _draw(self, tick: int) -> Anomaly:
        rng = self._rng
        kind = rng.choices(self._kinds, self._weights)[0]
        metric = rng.randrange(len(self._widths))
        width = self._widths[metric]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if kind is AnomalyKind.SPIKE:
            return Anomaly(kind, metric, tick, tick, width * rng.uniform(1.0, 2.0))
        end = tick + rng.randint(self._min_ticks, self._max_ticks) - 1
        if kind is AnomalyKind.LEVEL_SHIFT:
            return Anomaly(kind, metric, tick, end, sign * width * rng.uniform(0.5, 1.0))
        if kind is AnomalyKind.DRIFT:
            return Anomaly(kind, metric, tick, end, sign * width * rng.uniform(0.5, 1.5))
        return Anomaly(kind, metric, tick, end, 0.0)


@dataclass(frozen=True, slots=True)
class GroundTruthRow:
    """One injected anomaly, degradation period (one row per affected metric) or failure."""

    device: str
    metric: str  # '*' for a failure: the whole machine
    kind: str  # an AnomalyKind, 'degradation' or 'failure'
    start_us: int
    end_us: int
    magnitude: float | None = None  # offset of the anomaly, or rise at failure of a degradation
    rul_s: float | None = None  # degradation: remaining useful life at start_us (failure - start)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["start_ts"] = iso_utc(self.start_us)
        row["end_ts"] = iso_utc(self.end_us)
        return {name: row[name] for name in GROUND_TRUTH_FIELDS}


class GroundTruthWriter:
    """Writes ground-truth rows: CSV for ``.csv`` paths, else JSON lines.

    A new file unless ``append`` (a restarted connector goes on where it stopped).
    """

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not append or not path.exists() or path.stat().st_size == 0
            mode = "w" if fresh else "a"
            self._file: IO[str] | None = path.open(mode, encoding="utf-8", newline="")
        except OSError as exc:
            raise ConfigError(f"cannot write the ground truth file {path}: {exc}") from exc
        self._csv = csv.writer(self._file) if path.suffix.lower() == ".csv" else None
        if self._csv is not None and fresh:
            self._csv.writerow(GROUND_TRUTH_FIELDS)

    def write(self, rows: list[GroundTruthRow]) -> None:
        if self._file is None or not rows:
            return
        for row in rows:
            data = row.to_dict()
            if self._csv is not None:
                self._csv.writerow(["" if v is None else v for v in data.values()])
            else:
                self._file.write(json.dumps(data, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
