"""Novelty: has this series ever shown the shape of its last few readings?

A category memory in the spirit of Adaptive Resonance Theory, as a nearest-neighbour memory
(``CategoryMemory``), one per scale ``(agg, points)`` in ``scales`` and vigilance in
``vigilance``:

* the readings are averaged in blocks of ``agg``; each completed block makes a window, the
  means of the last ``points`` blocks (``points * agg`` readings; ``(1, 1)``: the reading);
* the window is put on the scale of the series: distances are divided by the range (largest
  minus smallest reading before this one, widened as new extremes appear);
* the memory holds at most ``capacity`` categories (a prototype window each). The window's
  distance ``d`` to its nearest category (largest coordinate difference, ``metric="max"``,
  or mean one, ``"mean"``, as a fraction of the range) is compared with the vigilance:
  within it, the window resonates and the category moves towards it (by ``1 / uses``, at
  least ``learn_rate``); beyond it, the window is new and becomes a category itself (the
  least recently used one is replaced once the memory is full);
* the raw novelty ``r = d / vigilance`` becomes ``r² / (r² + threshold²)`` (``band_score``),
  times ``(1 - tail)^rarity_power`` where ``tail`` is the share of the last ``history`` raw
  novelties of that scale at least as large (``RankCalibrator``).

The novelty is the mean (``combine="mean"``) or the largest of the memories' scores (a
memory scores 0.0 on readings that complete no window of its scale); several vigilances
around one value make the score graded and less dependent on the exact vigilance. With
``surprise_weight > 0`` (the default, 0.25) the detector also runs a ``SurpriseDetector``
(its defaults, its own onset gate off), scores the larger of the novelty and
``surprise_weight * surprise``, and reports the surprise detector's expected value and
band. Last, ``OnsetGate`` reports an episode once: a score of at least ``fire`` damps (by
``damp``) the scores not higher than it during the next ``quiet`` readings.

The defaults (one reading per window, three vigilances, 5-7 % of the range) make it a
"has the series been here before?" memory: a value in a band of the range that the series
has not visited (a spike, a dip, a new level, a stretch outside its usual bands) is new;
values it keeps returning to are learnt during warm-up and stay quiet. So the memories
first learn for a whole daily cycle (``learn_s``, one day of event time, and at least
``warmup`` readings): a young series visits new bands every hour of its first day. The range only
grows: after one huge spike the bands are coarser for good (drop the state to start over).
Scores are low by design: a window just at a memory's vigilance (r = 1) scores 0.2 there,
and the memories are averaged (the NAB-optimal thresholds of the defaults are 0.20 to 0.23).

With ``log_values`` the memories see ``log(1 + max(x, 0))`` (counts and rates whose spikes
are multiplicative). Warm-up: the first ``warmup`` readings and the first ``learn_s``
seconds of event time only fill the memories (score 0.0, ``warm=False``). NaN/inf readings are gaps: they change nothing and return the
previous score. Memory: at most ``capacity * points`` numbers per memory (and, only with
``rarity_power > 0``, ``history`` past novelties). Cost per reading:
a few float operations, and per memory and completed window one vectorised distance to at
most ``capacity`` prototypes (NumPy); memories of single readings (the defaults) are
``ScalarMemory``, the same arithmetic in plain Python with a bisection, about twice as fast.

Version 2 (from 1): during the learning day the weighted surprise is scored alone
(``surprise_while_learning``; version 1 scored nothing), so a young series is watched from
the surprise detector's 50th reading; the inner surprise detector's state is stored as its
``memory()`` (its params are fixed). The alert threshold, 0.202, is NAB's standard-profile
threshold; chosen on five categories it is 0.195-0.202 for every held-out sixth
(docs/ml-anomaly.md).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field

from sentio_iot.streams.detectors.base import (
    COLD,
    Detector,
    DetectorParams,
    LastScore,
    Score,
    is_reading,
)
from sentio_iot.streams.detectors.calibration import RankCalibrator
from sentio_iot.streams.detectors.onset import OnsetGate, damp_field, fire_field, quiet_field
from sentio_iot.streams.detectors.surprise import SurpriseDetector, SurpriseParams

Metric = Literal["max", "mean"]


# the inner surprise detector: its defaults, its onset gate off (validated once, shared)
INNER_SURPRISE = SurpriseParams.model_validate({"quiet": 0})


class NoveltyParams(DetectorParams):
    """Parameters of the novelty detector."""

    log_values: bool = Field(
        False,
        description="Learn log(1 + x) instead of x: for non-negative, spiky metrics (counts, rates); negatives count as 0.",
    )
    scales: tuple[tuple[int, int], ...] = Field(
        ((1, 1),),
        min_length=1,
        description="Windows compared, as (readings averaged per point, points per window).",
    )
    vigilance: tuple[float, ...] = Field(
        (0.05, 0.06, 0.07),
        min_length=1,
        description="Distances (fractions of the range) within which a window resonates; one memory each per scale.",
    )
    combine: Literal["mean", "max"] = Field(
        "mean", description="How the scores of the memories (scales x vigilances) combine."
    )
    metric: Metric = Field(
        "max", description="Distance between windows: largest or mean coordinate difference."
    )
    learn_rate: float = Field(
        0.05, gt=0, le=1, description="Smallest pull of a resonating category towards the window."
    )
    capacity: int = Field(200, ge=1, description="Most categories remembered per scale.")
    warmup: int = Field(
        50, ge=1, description="Readings learnt from before the first score; they score 0.0."
    )
    learn_s: float = Field(
        86_400.0,
        ge=0,
        description="Seconds of event time from the first reading that only teach the memories (e.g. 86400: a whole daily cycle), on top of `warmup`.",
    )
    threshold: float = Field(
        2.0, gt=0, description="Novelty d / vigilance that scores 0.5 (before rarity)."
    )
    rarity_power: float = Field(
        0.0,
        ge=0,
        description="Score x (1 - tail)^power, tail = share of the last `history` novelties at least as high (0: off).",
    )
    history: int = Field(2000, ge=10, description="Past novelties a new one is ranked against.")
    surprise_weight: float = Field(
        0.25, ge=0, description="Weight of the surprise detector's score in the max (0: off)."
    )
    surprise_while_learning: bool = Field(
        True,
        description="While the memories learn (`learn_s`), score the weighted surprise alone instead of nothing.",
    )
    fire: float = fire_field(0.1)
    quiet: int = quiet_field(80)
    damp: float = damp_field()
    min_scale: float = Field(
        1e-9, gt=0, description="Smallest range; keeps constant series from dividing by 0."
    )


class CategoryMemory:
    """Prototype windows of one scale; ``learn`` answers d / vigilance of each new window."""

    __slots__ = (
        "_block_len",
        "_block_sum",
        "_means",
        "_protos",
        "_size",
        "_used_at",
        "_uses",
        "agg",
        "capacity",
        "learn_rate",
        "metric",
        "points",
        "vigilance",
        "windows",
    )

    def __init__(
        self,
        agg: int,
        points: int,
        vigilance: float,
        metric: Metric,
        learn_rate: float,
        capacity: int,
    ) -> None:
        self.agg, self.points, self.vigilance = agg, points, vigilance
        self.metric, self.learn_rate, self.capacity = metric, learn_rate, capacity
        self._block_sum = 0.0
        self._block_len = 0
        self._means: deque[float] = deque(maxlen=points)
        self._protos = np.zeros((capacity, points))
        self._uses = np.zeros(capacity, dtype=np.int64)
        self._used_at = np.zeros(capacity, dtype=np.int64)
        self._size = 0
        self.windows = 0

    def learn(self, value: float, scale: float) -> float | None:
        """Learn from ``value``; d / vigilance when it completes a window, else None."""
        self._block_sum += value
        self._block_len += 1
        if self._block_len < self.agg:
            return None
        self._means.append(self._block_sum / self._block_len)
        self._block_sum, self._block_len = 0.0, 0
        if len(self._means) < self.points:
            return None
        self.windows += 1
        window = np.asarray(self._means)
        if self._size == 0:
            self._create(window)
            return None
        diffs = np.abs(self._protos[: self._size] - window)
        distances = diffs.max(axis=1) if self.metric == "max" else diffs.mean(axis=1)
        nearest = int(distances.argmin())
        raw = float(distances[nearest]) / (scale * self.vigilance)
        if raw <= 1.0:
            uses = int(self._uses[nearest]) + 1
            rate = max(self.learn_rate, 1.0 / uses)
            self._protos[nearest] += rate * (window - self._protos[nearest])
            self._uses[nearest] = uses
            self._used_at[nearest] = self.windows
        else:
            self._create(window)
        return raw

    def _create(self, window: np.ndarray) -> None:
        if self._size < self.capacity:
            slot = self._size
            self._size += 1
        else:
            slot = int(self._used_at.argmin())
        self._protos[slot] = window
        self._uses[slot] = 1
        self._used_at[slot] = self.windows

    def to_dict(self) -> dict[str, Any]:
        n = self._size
        return {
            "block": [self._block_sum, self._block_len],
            "means": list(self._means),
            "protos": self._protos[:n].tolist(),
            "uses": self._uses[:n].tolist(),
            "used_at": self._used_at[:n].tolist(),
            "windows": self.windows,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        block_sum, block_len = state["block"]
        self._block_sum, self._block_len = float(block_sum), int(block_len)
        self._means = deque((float(v) for v in state["means"]), maxlen=self.points)
        protos = state["protos"]
        n = len(protos)
        if n > self.capacity:
            raise ValueError(f"{n} categories for a capacity of {self.capacity}")
        self._size = n
        if n:
            self._protos[:n] = np.asarray(protos, dtype=np.float64).reshape(n, self.points)
        self._uses[:n] = np.asarray(state["uses"], dtype=np.int64)
        self._used_at[:n] = np.asarray(state["used_at"], dtype=np.int64)
        self.windows = int(state["windows"])


class ScalarMemory:
    """``CategoryMemory`` for windows of one reading (``agg = points = 1``), in plain Python.

    The same arithmetic, state and tie-breaking (the lowest slot among equally near
    categories) without NumPy: the categories are also kept sorted by value, so the nearest
    one is a bisection away. Moving a category towards its window never passes another
    category (one in between would have been nearer), so the order survives learning.
    """

    __slots__ = (
        "_mean",
        "_order",
        "_protos",
        "_used_at",
        "_uses",
        "_values",
        "capacity",
        "learn_rate",
        "vigilance",
        "windows",
    )

    agg = points = 1

    def __init__(self, vigilance: float, learn_rate: float, capacity: int) -> None:
        self.vigilance, self.learn_rate, self.capacity = vigilance, learn_rate, capacity
        self._protos: list[float] = []  # by slot
        self._uses: list[int] = []
        self._used_at: list[int] = []
        self._values: list[float] = []  # sorted prototype values
        self._order: list[int] = []  # their slots
        self._mean: float | None = None  # the last window (CategoryMemory's "means")
        self.windows = 0

    def learn(self, value: float, scale: float) -> float | None:
        self.windows += 1
        self._mean = value
        values = self._values
        if not values:
            self._create(value)
            return None
        i = bisect_left(values, value)
        order = self._order
        last = len(values) - 1
        # the nearest value is at i - 1 or i: one of them unless a tie or equal values make
        # the lowest slot among several the nearest category (then all of them are scanned)
        if i == 0:
            best_j = 0
        elif i > last:
            best_j = last
        else:
            left, right = value - values[i - 1], values[i] - value
            best_j = i - 1 if left < right else i if right < left else -1
        if best_j >= 0 and not (
            (best_j > 0 and values[best_j - 1] == values[best_j])
            or (best_j < last and values[best_j + 1] == values[best_j])
        ):
            best_d, best_slot = abs(values[best_j] - value), order[best_j]
        else:
            best_d, best_slot, best_j = self._nearest_of_several(value, i)
        raw = best_d / (scale * self.vigilance)
        if raw <= 1.0:
            uses = self._uses[best_slot] + 1
            rate = max(self.learn_rate, 1.0 / uses)
            old = self._protos[best_slot]
            moved = old + rate * (value - old)
            if (best_j == 0 or values[best_j - 1] <= moved) and (
                best_j == last or moved <= values[best_j + 1]
            ):
                values[best_j] = moved
                self._protos[best_slot] = moved
            else:  # only among equal values
                self._move(best_slot, moved)
            self._uses[best_slot] = uses
            self._used_at[best_slot] = self.windows
        else:
            self._create(value)
        return raw

    def _nearest_of_several(self, value: float, i: int) -> tuple[float, int, int]:
        """Distance, slot and sorted index of the nearest category, the lowest slot on ties."""
        values, order = self._values, self._order
        best_d, best_slot, best_j = math.inf, -1, -1
        for j in range(max(i - 1, 0), len(values)):
            d = abs(values[j] - value)
            if d > best_d or (j > i and d != best_d):
                break
            if d < best_d or order[j] < best_slot:
                best_d, best_slot, best_j = d, order[j], j
        for j in range(i - 2, -1, -1):
            if abs(values[j] - value) != best_d:
                break
            if order[j] < best_slot:
                best_slot, best_j = order[j], j
        return best_d, best_slot, best_j

    def _create(self, value: float) -> None:
        if len(self._protos) < self.capacity:
            self._protos.append(value)
            self._uses.append(1)
            self._used_at.append(self.windows)
            slot = len(self._protos) - 1
            k = bisect_left(self._values, value)
            self._values.insert(k, value)
            self._order.insert(k, slot)
            return
        used_at = self._used_at
        slot = min(range(len(used_at)), key=used_at.__getitem__)
        self._move(slot, value)
        self._uses[slot] = 1
        used_at[slot] = self.windows

    def _move(self, slot: int, value: float) -> None:
        old = self._protos[slot]
        k = bisect_left(self._values, old)
        while self._order[k] != slot:
            k += 1
        del self._values[k], self._order[k]
        k = bisect_left(self._values, value)
        self._values.insert(k, value)
        self._order.insert(k, slot)
        self._protos[slot] = value

    def to_dict(self) -> dict[str, Any]:
        return {
            "block": [0.0, 0],
            "means": [] if self._mean is None else [self._mean],
            # flat (CategoryMemory's one-point windows are [[v], ...], also read back):
            # building and packing 200 one-element lists was most of a commit's export
            "protos": list(self._protos),
            "uses": list(self._uses),
            "used_at": list(self._used_at),
            "windows": self.windows,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        means = state["means"]
        self._mean = float(means[-1]) if means else None
        stored = state["protos"]
        if stored and isinstance(stored[0], list | tuple):  # CategoryMemory's [[v], ...]
            protos = [float(v[0]) for v in stored]
        else:
            protos = [float(v) for v in stored]
        if len(protos) > self.capacity:
            raise ValueError(f"{len(protos)} categories for a capacity of {self.capacity}")
        self._protos = protos
        self._uses = [int(v) for v in state["uses"]]
        self._used_at = [int(v) for v in state["used_at"]]
        pairs = sorted(zip(protos, range(len(protos)), strict=True))
        self._values = [v for v, _ in pairs]
        self._order = [slot for _, slot in pairs]
        self.windows = int(state["windows"])


def new_memory(
    agg: int, points: int, vigilance: float, metric: Metric, learn_rate: float, capacity: int
) -> CategoryMemory | ScalarMemory:
    """The memory of one scale and vigilance: the plain-Python one for single readings."""
    if agg == points == 1:
        return ScalarMemory(vigilance, learn_rate, capacity)
    return CategoryMemory(agg, points, vigilance, metric, learn_rate, capacity)


class NoveltyDetector(LastScore, Detector[NoveltyParams]):
    """Distance of the recent windows to the nearest remembered ones, reported at the onset."""

    name = "novelty"
    version = 2
    # NAB's standard-profile threshold on the development corpus; chosen on five categories
    # for each held-out sixth it is 0.195-0.202 (docs/ml-anomaly.md)
    alert_threshold = 0.202
    params_model = NoveltyParams

    def __init__(self, params: NoveltyParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._count = 0
        self._first_us: int | None = None
        self._low = float("inf")
        self._high = float("-inf")
        self._memories = [
            new_memory(agg, points, vigilance, p.metric, p.learn_rate, p.capacity)
            for agg, points in p.scales
            for vigilance in p.vigilance
        ]
        # one per memory, built only when rarity_power > 0 (the defaults never use them)
        self._rarity = [RankCalibrator(p.history) for _ in self._memories] if p.rarity_power else []
        self._surprise = SurpriseDetector(INNER_SURPRISE) if p.surprise_weight > 0 else None
        self._gate = OnsetGate(p.fire, p.quiet, p.damp)
        self._last_score = COLD
        self._last_fields = None
        self._learn_us = p.learn_s * 1e6
        self._plain_mean = not p.rarity_power and p.combine == "mean"
        self._square_threshold = p.threshold * p.threshold

    def update(self, ts_us: int, value: float) -> Score:
        return self._last if self.observe(ts_us, value) >= 0.0 else COLD

    def latest(self) -> Score:
        return self._last

    def observe(self, ts_us: int, value: float) -> float:
        """The stream's per-point path: ``update`` without a ``Score`` (-1.0: not warm)."""
        if not is_reading(value):
            last = self._last
            return last.score if last.warm else -1.0
        p = self.params
        surprise = self._surprise
        band = surprise.advance(ts_us, value) if surprise is not None else None
        if p.log_values:
            value = math.log1p(0.0 if value < 0.0 else value)  # max(value, 0.0)
        self._count += 1
        first = self._first_us
        if first is None:
            first = self._first_us = ts_us
        learning = self._count <= p.warmup or ts_us - first < self._learn_us
        # min/max written out: min(a, b) is b only when b < a (the same for NaN and -0.0)
        low, high = self._low, self._high
        scale = high - low
        if value < low:
            low = self._low = value
        if value > high:
            high = self._high = value
        if scale <= 0:
            scale = high - low
        if p.min_scale > scale:
            scale = p.min_scale
        raws = []
        for memory in self._memories:  # a loop: a comprehension costs a frame in 3.11
            raws.append(memory.learn(value, scale))
        if learning:
            if not (p.surprise_while_learning and band is not None):
                return -1.0
            novelty = 0.0
        elif self._plain_mean:  # _novelty() without rarity, combine "mean", written out
            square_threshold = self._square_threshold
            scores = []
            for raw in raws:
                if raw is None:
                    scores.append(0.0)
                else:
                    square = raw * raw
                    scores.append(square / (square + square_threshold))
            novelty = sum(scores) / len(scores)
        else:
            novelty = self._novelty(raws)
        weighted = p.surprise_weight * (band[0] if band is not None else 0.0)
        score = self._gate.gate(weighted if weighted > novelty else novelty)
        score = score if score > 0.0 else 0.0  # min(1.0, max(0.0, score))
        score = score if score < 1.0 else 1.0
        if band is None:
            self._last_fields = (score, None, None, None)
        else:
            self._last_fields = (score, band[1], band[2], band[3])
        return score

    def _novelty(self, raws: list[float | None]) -> float:
        p = self.params
        square_threshold = p.threshold * p.threshold
        scores = []
        for i, raw in enumerate(raws):
            if raw is None:
                scores.append(0.0)
                continue
            square = raw * raw
            score = square / (square + square_threshold)  # band_score(raw, p.threshold)
            # the calibrators (one per memory) exist only when rarity_power > 0
            scores.append(
                self._rarity[i].weigh(score, raw, p.rarity_power) if p.rarity_power else score
            )
        return sum(scores) / len(scores) if p.combine == "mean" else max(scores)

    def _export_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "count": self._count,
            "first_us": self._first_us,
            "low": self._low if self._count else None,
            "high": self._high if self._count else None,
            "memories": [m.to_dict() for m in self._memories],
            # its memory only: its params are fixed (quiet 0), no need to store them per series
            "surprise": self._surprise.memory() if self._surprise is not None else None,
            "gate": self._gate.to_list(),
            "last": self._last_dict(),
        }
        if self._rarity:  # rarity_power > 0 (until 2026-12-07 it was written empty otherwise)
            state["rarity"] = [r.to_list() for r in self._rarity]
        return state

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        p = self.params
        self._count = int(state["count"])
        first = state["first_us"]
        self._first_us = None if first is None else int(first)
        low, high = state["low"], state["high"]
        self._low = float("inf") if low is None else float(low)
        self._high = float("-inf") if high is None else float(high)
        memories = state["memories"]
        if len(memories) != len(self._memories):
            raise ValueError(f"{len(memories)} memories for {len(self._memories)} scales")
        for memory, data in zip(self._memories, memories, strict=True):
            memory.restore(data)
        if p.rarity_power:  # else the entry, if any (older states), holds empty lists
            rarity = state["rarity"]
            if len(rarity) != len(self._memories):
                raise ValueError(f"{len(rarity)} rarity calibrators for {len(memories)} memories")
            self._rarity = [RankCalibrator(p.history, [float(v) for v in r]) for r in rarity]
        if self._surprise is not None:  # the fresh one of __init__, continued in place
            self._surprise._restore_state(state["surprise"])
        self._gate = OnsetGate.from_list(p.fire, p.quiet, p.damp, state["gate"])
        self._last = Score.from_dict(state["last"])
