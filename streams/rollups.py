"""Tumbling-window rollups per (device, metric) on event time: the pure logic, no Kafka.

The rollups agent wraps :class:`RollupAggregator` (or a changelog-backed table of
:class:`WindowAccumulator` states); tests and benchmarks drive it directly.

Semantics
---------
* Windows are tumbling and aligned to the Unix epoch: a value at ``ts_us`` falls in
  ``[start, start + size)`` with ``start = ts_us - ts_us % size``. A value exactly at a window's
  end belongs to the next window. Every configured size (e.g. 60 s and 3600 s) gets its own window.
* Time is EVENT time in integer microseconds, never the wall clock (except :meth:`flush`).
* The watermark is kept PER DEVICE: ``max event time seen from that device - grace``. A device
  whose clock lags, or that reports in bursts, then neither closes nor drops another device's
  windows. A window closes, exactly once, when its end is at or below its device's watermark.
* A value whose window already closed (its end is at or below the device's watermark, or at or
  below the end of a window of the same device, metric and size already emitted) is late: it is
  dropped and counted in :attr:`RollupAggregator.late_dropped`, per window size. It never reopens
  or re-emits a window. A value late for one size may still count in a larger, still-open window.
* ``stddev`` is the POPULATION standard deviation (divide by ``count``; 0 for one value),
  computed with Welford's online algorithm so large offsets (e.g. 1e9 + small noise) keep
  their precision. ``mean`` is ``sum / count``.
* ``last`` is the value with the latest event time; on a tie the later arrival wins.
* ``unit`` and ``labels`` are copied from the latest arrival in the window.
* Closed rollups come back ordered by device, then window end, window size and metric.
* ``None`` values (a metric that could not be read) and NaN are skipped: NaN would poison every
  statistic of the window.

State is one :class:`WindowAccumulator` per (device, metric, window size, window start); there is
nothing to merge. ``to_state()`` / ``from_state()`` give plain JSON-able dicts for a changelog
table, for the accumulators and for the whole aggregator (watermarks and counters included).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Rollup", "RollupAggregator", "WindowAccumulator", "window_start"]

_US_PER_S = 1_000_000


def window_start(ts_us: int, window_s: int) -> int:
    """Start (µs, inclusive) of the ``window_s`` tumbling window holding ``ts_us``."""
    size_us = window_s * _US_PER_S
    return ts_us - ts_us % size_us


@dataclass(frozen=True, slots=True)
class Rollup:
    """One closed window of one metric of one device; ``to_record()`` matches ``Rollup.avsc``."""

    device_id: str
    metric: str
    unit: str | None
    window_start: int
    window_end: int
    window_s: int
    count: int
    min: float
    max: float
    mean: float
    sum: float
    last: float
    stddev: float
    labels: Mapping[str, str] = field(hash=False)

    def to_record(self) -> dict[str, Any]:
        """The Avro record (field names exactly as in ``schemas/avro/Rollup.avsc``)."""
        return {
            "device_id": self.device_id,
            "metric": self.metric,
            "unit": self.unit,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "window_s": self.window_s,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "sum": self.sum,
            "last": self.last,
            "stddev": self.stddev,
            "labels": dict(self.labels),
        }


@dataclass(slots=True)
class WindowAccumulator:
    """Running statistics of one open window; the unit of state (one per key, never merged)."""

    device_id: str
    metric: str
    window_s: int
    window_start: int
    unit: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    sum: float = 0.0
    last: float = 0.0
    last_ts: int = 0
    welford_mean: float = 0.0
    m2: float = 0.0

    @property
    def window_end(self) -> int:
        """End of the window (µs, exclusive)."""
        return self.window_start + self.window_s * _US_PER_S

    def add(self, ts_us: int, value: float, unit: str | None, labels: Mapping[str, str]) -> None:
        """Fold one value in (the caller has checked that ``ts_us`` lies in this window)."""
        value = float(value)
        self.count += 1
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.sum += value
        delta = value - self.welford_mean
        self.welford_mean += delta / self.count
        self.m2 += delta * (value - self.welford_mean)
        if self.count == 1 or ts_us >= self.last_ts:  # tie: the later arrival wins
            self.last = value
            self.last_ts = ts_us
        self.unit = unit
        self.labels = dict(labels)

    def fold(self, ts_us: int, value: float, unit: str | None, labels: dict[str, str]) -> None:
        """:meth:`add` for a float, keeping ``labels`` itself (the caller's copy, shared by
        the windows of one reading and never changed afterwards)."""
        count = self.count = self.count + 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.sum += value
        mean = self.welford_mean
        delta = value - mean
        mean += delta / count
        self.welford_mean = mean
        self.m2 += delta * (value - mean)
        if count == 1 or ts_us >= self.last_ts:  # tie: the later arrival wins
            self.last = value
            self.last_ts = ts_us
        self.unit = unit
        self.labels = labels

    def to_rollup(self) -> Rollup:
        """The rollup of what was added so far; the window must hold at least one value."""
        if self.count == 0:
            raise ValueError("an empty window has no rollup")
        return Rollup(
            device_id=self.device_id,
            metric=self.metric,
            unit=self.unit,
            window_start=self.window_start,
            window_end=self.window_end,
            window_s=self.window_s,
            count=self.count,
            min=self.min,
            max=self.max,
            mean=self.sum / self.count,
            sum=self.sum,
            last=self.last,
            stddev=math.sqrt(max(self.m2, 0.0) / self.count),
            labels=dict(self.labels),
        )

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able dict (an empty window's ±inf min/max are stored as null)."""
        return {
            "device_id": self.device_id,
            "metric": self.metric,
            "window_s": self.window_s,
            "window_start": self.window_start,
            "unit": self.unit,
            "labels": dict(self.labels),
            "count": self.count,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "sum": self.sum,
            "last": self.last,
            "last_ts": self.last_ts,
            "welford_mean": self.welford_mean,
            "m2": self.m2,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> WindowAccumulator:
        """Rebuild an accumulator from :meth:`to_state` output."""
        return cls(
            device_id=str(state["device_id"]),
            metric=str(state["metric"]),
            window_s=int(state["window_s"]),
            window_start=int(state["window_start"]),
            unit=None if state["unit"] is None else str(state["unit"]),
            labels={str(k): str(v) for k, v in state["labels"].items()},
            count=int(state["count"]),
            min=math.inf if state["min"] is None else float(state["min"]),
            max=-math.inf if state["max"] is None else float(state["max"]),
            sum=float(state["sum"]),
            last=float(state["last"]),
            last_ts=int(state["last_ts"]),
            welford_mean=float(state["welford_mean"]),
            m2=float(state["m2"]),
        )


# (metric, window_s, window_start) inside one device's open windows.
_Slot = tuple[str, int, int]


class RollupAggregator:
    """Tumbling-window rollups for many devices and metrics, closed by a per-device watermark.

    ``windows_s`` are the window sizes in seconds, ``grace_s`` how long (event time) a window
    stays open after its end for late values.
    """

    def __init__(self, windows_s: Iterable[int] = (60, 3600), grace_s: int = 0) -> None:
        sizes = tuple(windows_s)
        if not sizes or any(s <= 0 for s in sizes) or len(set(sizes)) != len(sizes):
            raise ValueError(f"window sizes must be distinct positive seconds, got {sizes!r}")
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
        self.windows_s: tuple[int, ...] = sizes
        self.grace_s = grace_s
        self._grace_us = grace_s * _US_PER_S
        self._open: dict[str, dict[_Slot, WindowAccumulator]] = {}
        self._watermark: dict[str, int] = {}
        # End of the latest emitted window per (device, metric, window_s): nothing at or
        # before it may open again, even after close_all() emitted windows early.
        self._closed_until: dict[tuple[str, str, int], int] = {}
        self.late_dropped: dict[int, int] = dict.fromkeys(sizes, 0)
        """Values dropped as late, per window size (a value may be late for one size only)."""
        # Per device, at most the earliest end of its open windows (exact after each close):
        # most readings close nothing, and this spares them the scan of the device's windows.
        self._earliest_end: dict[str, int] = {}

    @property
    def late_dropped_total(self) -> int:
        """Values dropped as late, summed over window sizes."""
        return sum(self.late_dropped.values())

    def watermark(self, device_id: str) -> int | None:
        """The device's watermark (µs), or None before its first value."""
        return self._watermark.get(device_id)

    def open_windows(self) -> int:
        """How many windows are open (holding at least one value)."""
        return sum(len(slots) for slots in self._open.values())

    def add(
        self,
        device_id: str,
        metric: str,
        ts_us: int,
        value: float | None,
        unit: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Rollup]:
        """Fold one reading in; return the windows of this device its event time closed."""
        if value is None or not math.isfinite(value):  # NaN and infinities are gaps
            return []
        slots = self._open.setdefault(device_id, {})
        watermark = self._watermark.get(device_id)
        for size in self.windows_s:
            start = window_start(ts_us, size)
            end = start + size * _US_PER_S
            floor = self._closed_until.get((device_id, metric, size))
            if (watermark is not None and end <= watermark) or (floor is not None and end <= floor):
                self.late_dropped[size] += 1
                continue
            slot = (metric, size, start)
            acc = slots.get(slot)
            if acc is None:
                acc = slots[slot] = WindowAccumulator(device_id, metric, size, start)
                self._opened(device_id, end)
            acc.add(ts_us, value, unit, labels or {})
        candidate = ts_us - self._grace_us
        if watermark is None or candidate > watermark:
            self._watermark[device_id] = candidate
            return self._close_until(device_id, candidate)
        return []

    def add_reading(
        self,
        device_id: str,
        ts_us: int,
        metrics: Iterable[Mapping[str, Any]],
        labels: Mapping[str, str] | None = None,
    ) -> list[Rollup]:
        """Fold in every metric of one reading (Avro ``Metric`` dicts: ``name``, ``value``,
        ``unit``); the same result and state as :meth:`add` for each metric in turn.

        Why it is the same: the windows holding ``ts_us`` end after it, so the watermark the
        first metric raises (to at most ``ts_us - grace``) neither makes a later metric late
        nor closes what it adds; the windows closed once after all metrics are those
        :meth:`add` would close after the first, in the same order. Window bounds are
        computed once per reading and the labels copied once, shared by its windows.
        """
        watermark = self._watermark.get(device_id)
        slots = self._open.get(device_id)
        closed_until = self._closed_until
        late = self.late_dropped
        bounds = [(size, ts_us - ts_us % (size * _US_PER_S)) for size in self.windows_s]
        shared: dict[str, str] | None = None
        added = False
        for metric in metrics:
            value = metric["value"]
            if value is None or not math.isfinite(value):  # NaN and infinities are gaps
                continue
            name = metric["name"]
            if slots is None:
                slots = self._open.setdefault(device_id, {})
            if shared is None:
                shared = dict(labels) if labels else {}
            for size, start in bounds:
                end = start + size * _US_PER_S
                floor = closed_until.get((device_id, name, size)) if closed_until else None
                if (watermark is not None and end <= watermark) or (
                    floor is not None and end <= floor
                ):
                    late[size] += 1
                    continue
                slot = (name, size, start)
                acc = slots.get(slot)
                if acc is None:
                    acc = slots[slot] = WindowAccumulator(device_id, name, size, start)
                    self._opened(device_id, end)
                acc.fold(ts_us, float(value), metric["unit"], shared)
            added = True
        if not added:
            return []
        candidate = ts_us - self._grace_us
        if watermark is None or candidate > watermark:
            self._watermark[device_id] = candidate
            return self._close_until(device_id, candidate)
        return []

    def _opened(self, device_id: str, end: int) -> None:
        earliest = self._earliest_end.get(device_id)
        if earliest is not None and end < earliest:
            self._earliest_end[device_id] = end

    def _close_until(self, device_id: str, bound: int) -> list[Rollup]:
        """Close the device's windows that end at or below ``bound``."""
        earliest = self._earliest_end.get(device_id)
        if earliest is not None and earliest > bound:
            return []
        return self._close(device_id, lambda end: end <= bound)

    def flush(self, now_us: int) -> list[Rollup]:
        """Close what the wall clock says is over: every device's watermark rises to at least
        ``now_us - grace`` (idle devices included) and the windows that end at or below it close.
        """
        bound = now_us - self._grace_us
        closed: list[Rollup] = []
        for device_id in sorted(self._watermark):
            if bound > self._watermark[device_id]:
                self._watermark[device_id] = bound
            closed.extend(self._close_until(device_id, bound))
        return closed

    def close_all(self) -> list[Rollup]:
        """Close every open window now (shutdown); none of them can open again."""
        closed: list[Rollup] = []
        for device_id in sorted(self._open):
            closed.extend(self._close(device_id, lambda end: True))
        return closed

    def _close(self, device_id: str, due: Callable[[int], bool]) -> list[Rollup]:
        slots = self._open.get(device_id)
        if not slots:
            return []
        ready = sorted(
            (slot for slot, acc in slots.items() if due(acc.window_end)),
            key=lambda s: (s[2] + s[1] * _US_PER_S, s[1], s[0]),  # by end, size, metric
        )
        closed: list[Rollup] = []
        for slot in ready:
            acc = slots.pop(slot)
            key = (device_id, acc.metric, acc.window_s)
            self._closed_until[key] = max(
                self._closed_until.get(key, acc.window_end), acc.window_end
            )
            closed.append(acc.to_rollup())
        if slots:
            self._earliest_end[device_id] = min(acc.window_end for acc in slots.values())
        else:
            del self._open[device_id]
            self._earliest_end.pop(device_id, None)
        return closed

    def to_state(self) -> dict[str, Any]:
        """The whole aggregator as a plain JSON-able dict."""
        return {
            "windows_s": list(self.windows_s),
            "grace_s": self.grace_s,
            "watermarks": dict(self._watermark),
            "closed_until": [[d, m, s, end] for (d, m, s), end in self._closed_until.items()],
            "late_dropped": [[size, n] for size, n in self.late_dropped.items()],
            "windows": [acc.to_state() for slots in self._open.values() for acc in slots.values()],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RollupAggregator:
        """Rebuild an aggregator from :meth:`to_state` output."""
        agg = cls(windows_s=[int(s) for s in state["windows_s"]], grace_s=int(state["grace_s"]))
        agg._watermark = {str(d): int(wm) for d, wm in state["watermarks"].items()}
        agg._closed_until = {
            (str(d), str(m), int(s)): int(end) for d, m, s, end in state["closed_until"]
        }
        agg.late_dropped = {int(size): int(n) for size, n in state["late_dropped"]}
        for window in state["windows"]:
            acc = WindowAccumulator.from_state(window)
            agg._open.setdefault(acc.device_id, {})[
                (acc.metric, acc.window_s, acc.window_start)
            ] = acc
        return agg
