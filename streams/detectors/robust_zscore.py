"""Robust z-score: a cheap O(1) detector of spikes and level shifts in one series.

How it works, per reading ``x`` (after warm-up):

1. ``z = |x - location| / scale``, where ``scale`` estimates the standard deviation and is
   never below ``min_scale`` (a constant series has scale 0; the floor avoids a division by
   zero and makes any change after a constant stretch score close to 1).
2. ``score`` squashes ``z`` with a logistic centred on the band edge, shifted so that a
   perfect prediction scores exactly 0::

       L(z)  = 1 / (1 + exp(-STEEPNESS * (z - threshold)))
       score = (L(z) - L(0)) / (1 - L(0))

   so ``z = threshold`` (a reading on the band edge) scores about 0.5, ``threshold + 2``
   about 0.95, and the band is ``location ± threshold * scale``.
3. Learn with Huber-clipped exponential smoothing (Gelper, Fried & Croux 2010, "Robust
   forecasting with exponential and Holt-Winters smoothing"): the residual is clipped to
   ``± clip * scale`` before it moves ``location``, and the absolute residual likewise
   before it moves ``scale``, so one spike barely moves either estimate.
4. Level shifts: clipping makes the estimates slow to follow a real change, so after
   ``shift_after`` consecutive readings outside the band the detector re-anchors on them:
   ``location`` becomes their mean and ``scale`` the larger of itself and their standard
   deviation. After a level shift, readings score high until the ``shift_after``-th
   reading beyond it (included) and normally again from the next one.

Warm-up: the first ``warmup`` readings are only collected (score 0.0, ``warm=False``);
then ``location`` starts at their median and ``scale`` at 1.4826 x their median absolute
deviation. NaN and ±inf readings are gaps: ignored, they change nothing and return the
previous score (or a cold 0.0 before the first one).

The detector counts readings, not time: ``half_life`` is in readings, and ``ts_us`` is
accepted for the interface but not used.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from sentio_iot.streams.detectors.base import (
    COLD,
    Detector,
    DetectorParams,
    Score,
    is_reading,
)

STEEPNESS = 1.5  # of the logistic, per unit of z
MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation, normal data
MEAN_ABS_TO_SIGMA = math.sqrt(math.pi / 2)  # mean absolute deviation -> standard deviation


class RobustZScoreParams(DetectorParams):
    """Parameters of the robust z-score detector."""

    half_life: float = Field(
        50.0,
        gt=0,
        description="Readings after which an old reading weighs half as much in the estimates.",
    )
    warmup: int = Field(
        30, ge=1, description="Readings collected before the first score; they score 0.0."
    )
    threshold: float = Field(
        4.0,
        gt=0,
        description="Band half-width in standard deviations; a reading on the edge scores 0.5.",
    )
    clip: float = Field(
        3.0,
        gt=0,
        description="Residuals beyond this many standard deviations are clipped while learning.",
    )
    shift_after: int = Field(
        5,
        ge=1,
        description="Consecutive readings outside the band after which the level is re-anchored.",
    )
    min_scale: float = Field(
        1e-9,
        gt=0,
        description="Smallest standard deviation used; keeps constant series from dividing by 0.",
    )

    @property
    def alpha(self) -> float:
        """Smoothing weight of the newest reading."""
        return 1.0 - math.exp(-math.log(2.0) / self.half_life)


class RobustZScoreDetector(Detector[RobustZScoreParams]):
    """Spikes and level shifts, from a robust exponentially weighted location and scale."""

    name = "robust_zscore"
    version = 1
    alert_threshold = 0.9  # well beyond the band edge (0.5); its score saturates at 1.0
    params_model = RobustZScoreParams

    def __init__(self, params: RobustZScoreParams | None = None) -> None:
        super().__init__(params)
        self._warmup_values: list[float] = []
        self._location: float | None = None  # None until warm-up is over
        self._scale = 0.0
        self._run = _Run()
        self._last = COLD

    @property
    def warm(self) -> bool:
        return self._location is not None

    def update(self, ts_us: int, value: float) -> Score:
        if not is_reading(value):
            return self._last
        if self._location is None:
            self._collect(value)
            self._last = COLD
        else:
            self._last = self._score_and_learn(self._location, value)
        return self._last

    def _collect(self, value: float) -> None:
        self._warmup_values.append(value)
        if len(self._warmup_values) < self.params.warmup:
            return
        median = statistics.median(self._warmup_values)
        mad = statistics.median(abs(v - median) for v in self._warmup_values)
        self._location, self._scale = median, MAD_TO_SIGMA * mad
        self._warmup_values = []

    def _score_and_learn(self, location: float, value: float) -> Score:
        p = self.params
        scale = max(self._scale, p.min_scale)
        residual = value - location
        z = abs(residual) / scale
        score = Score(
            _squash(z, p.threshold),
            expected=location,
            lower=location - p.threshold * scale,
            upper=location + p.threshold * scale,
            warm=True,
        )
        bound = p.clip * scale
        self._location = location + p.alpha * max(-bound, min(bound, residual))
        self._scale += p.alpha * (MEAN_ABS_TO_SIGMA * min(abs(residual), bound) - self._scale)
        self._track_shift(value, outside=z > p.threshold)
        return score

    def _track_shift(self, value: float, *, outside: bool) -> None:
        if not outside:
            self._run = _Run()
            return
        self._run.add(value)
        if self._run.count >= self.params.shift_after:
            self._location = self._run.mean
            self._scale = max(self._scale, self._run.stdev)
            self._run = _Run()

    def _export_state(self) -> dict[str, Any]:
        return {
            "warmup_values": list(self._warmup_values),
            "location": self._location,
            "scale": self._scale,
            "run": self._run.to_list(),
            "last": self._last.to_dict(),
        }

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        self._warmup_values = [float(v) for v in state["warmup_values"]]
        location = state["location"]
        self._location = None if location is None else float(location)
        self._scale = float(state["scale"])
        self._run = _Run.from_list(state["run"])
        self._last = Score.from_dict(state["last"])


def _squash(z: float, threshold: float) -> float:
    """Logistic centred on the band edge, rescaled so that z = 0 scores exactly 0."""
    at_zero = _logistic(-threshold)
    return max(0.0, min(1.0, (_logistic(z - threshold) - at_zero) / (1.0 - at_zero)))


def _logistic(x: float) -> float:
    # x >= -threshold here, so exp() never overflows
    return 1.0 / (1.0 + math.exp(-STEEPNESS * x))


class _Run:
    """Consecutive readings outside the band: count, mean and spread (Welford, O(1))."""

    __slots__ = ("count", "m2", "mean")

    def __init__(self, count: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.count, self.mean, self.m2 = count, mean, m2

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    @property
    def stdev(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    def to_list(self) -> list[float]:
        return [self.count, self.mean, self.m2]

    @classmethod
    def from_list(cls, data: list[float]) -> _Run:
        count, mean, m2 = data
        return cls(int(count), float(mean), float(m2))
