"""Surprise: how far a reading is from what its series usually does, reported at the onset.

Per reading ``x`` the detector measures some of five features, each a "raw surprise":

* ``level``: ``z = |x - mean| / std`` against exponentially weighted moments of the values
  (half-life ``half_life`` readings): spikes, dips, a new level;
* ``step``: the same for the step ``x - x_prev``: spikes, jumps, a change of noise;
* ``drift``: the same for the mean of the last ``drift_window`` readings: a slow move of
  the level, a change of regime hidden in noise;
* ``daily``: the same against the moments of the reading's slot of the day (UTC; one
  moment per slot, ``daily_slots`` per day): a reading unusual for this time of day;
* ``context``: how new the pattern of the last ``context_length`` readings is
  (``ContextMemory``): a missing peak or a flat stretch in a periodic series.

By default (``calibrate=False``) each raw z is first divided by its feature's *typical
size in this series* (``scale_power`` p > 0): ``x = z / max(s, scale_floor)`` with
``s = (EW mean of past z^p)^(1/p)`` (half-life ``scale_half_life`` readings). A series that
is always a little surprised (noisy, spiky, with a feature that fits it badly) needs a
larger z to score as high as a calm one: one threshold then means the same rarity on every
series. The mean starts as if ``scale_prior`` readings of Gaussian noise had been seen
(``E|Z|^p``, typical size 1.24 for p = 3.5), so the first readings are not over-scaled;
a feature not ready yet (drift, daily) counts its z as 0, which lowers its typical size
until it is. The largest ``x`` over the features becomes ``score = x² / (x² + threshold²)``
(0.5 at ``x = threshold``, see ``band_score``), optionally times ``(1 - tail)^rarity_power``
where ``tail`` is the share of the last ``history`` x that were at least as large
(``RankCalibrator``). ``scale_power = 0`` skips the scaling (then ``threshold`` is in raw z).
With ``calibrate=True`` each raw surprise (averaged over its last ``smooth`` values) is
ranked against its own last ``history`` values (``RankCalibrator``) instead, and
``score = 1 - min(1, k * min(tails))`` for ``k`` features: the rarity of the surprise *in this series*.
Last, ``OnsetGate`` reports an episode once: a score of at least ``fire`` damps (by
``damp``) the scores not higher than it during the next ``quiet`` readings.

With ``log_values`` the detector sees ``log(1 + max(x, 0))``: for counts and rates whose
spikes are multiplicative (fewer false alarms on spiky series, ``expected`` and the band are
then on the log scale too).

Warm-up: the first ``warmup`` readings only teach the moments (score 0.0, ``warm=False``);
a daily slot is used once it has ``daily_min_count`` readings. Readings count, not time,
except for the daily slot (from ``ts_us``). NaN/inf readings are gaps: they change nothing
and return the previous score. Cost per reading: a few float operations per feature (and,
with rarity or calibrated, a bisection and an O(history) list insert per feature). The state
holds the step moments, the context memory and the calibrators only when the features and
params use them (the defaults use none).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal, cast

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
from sentio_iot.streams.detectors.context import ContextMemory
from sentio_iot.streams.detectors.moments import MAX_Z, EwMoments, alpha_for
from sentio_iot.streams.detectors.onset import OnsetGate, damp_field, fire_field, quiet_field

BAND_Z = 4.0  # width of the reported band (expected ± BAND_Z standard deviations)

FeatureName = Literal["level", "step", "drift", "context", "daily"]
LEVEL, STEP, DRIFT, CONTEXT, DAILY = range(5)
FEATURE_CODES: dict[str, int] = {
    "level": LEVEL,
    "step": STEP,
    "drift": DRIFT,
    "context": CONTEXT,
    "daily": DAILY,
}
US_PER_DAY = 86_400_000_000


class SurpriseParams(DetectorParams):
    """Parameters of the surprise detector."""

    features: tuple[FeatureName, ...] = Field(
        ("level", "drift", "daily"), min_length=1, description="Surprises measured per reading."
    )
    log_values: bool = Field(
        False,
        description="Score log(1 + x) instead of x: for non-negative, spiky metrics (counts, rates); negatives count as 0.",
    )
    half_life: float = Field(
        600.0, gt=0, description="Half-life of the level, step and drift moments, in readings."
    )
    warmup: int = Field(
        50, ge=2, description="Readings learnt from before the first score; they score 0.0."
    )
    smooth: int = Field(1, ge=1, description="Raw surprises averaged before calibration (1: none).")
    history: int = Field(8000, ge=10, description="Past raw surprises a new one is ranked against.")
    drift_window: int = Field(
        60, ge=2, description="Readings in the short mean of the drift feature."
    )
    context_length: int = Field(6, ge=1, description="Readings in a context (context feature).")
    context_bins: int = Field(8, ge=1, description="Bins across the warm-up range of values.")
    context_capacity: int = Field(20000, ge=100, description="Most contexts remembered per series.")
    daily_slots: int = Field(
        24,
        ge=1,
        description="Slots per day of the daily feature (24: one per hour of the day, UTC).",
    )
    daily_half_life: float = Field(
        20.0, gt=0, description="Half-life of each slot's moments, in readings of that slot."
    )
    daily_min_count: int = Field(
        10, ge=2, description="Readings a slot needs before the daily feature uses it."
    )
    scale_power: float = Field(
        3.5,
        ge=0,
        description="Divide each feature's z by its typical size in this series, the p-th root of the EW mean of its z^p, p = scale_power (0: off).",
    )
    scale_half_life: float = Field(
        8000.0, gt=0, description="Half-life of the typical size of each feature's z, in readings."
    )
    scale_floor: float = Field(
        0.7, gt=0, description="Smallest typical size: a very regular series is not over-scaled."
    )
    scale_prior: float = Field(
        50.0,
        ge=0,
        description="Readings' worth of weight given at the start to the typical size of Gaussian noise, so the first readings are not over-scaled.",
    )
    threshold: float = Field(
        2.0,
        gt=0,
        description="z (largest over the features, after scaling) that scores 0.5 (not calibrated).",
    )
    calibrate: bool = Field(
        False,
        description="Rank each surprise against its own past (else combine the raw z-scores).",
    )
    rarity_power: float = Field(
        0.0,
        ge=0,
        description="Score x (1 - tail)^power, tail = share of the last `history` z at least as high (0: off).",
    )
    fire: float = fire_field(0.36)
    quiet: int = quiet_field(125)
    damp: float = damp_field()
    min_scale: float = Field(
        1e-9,
        gt=0,
        description="Smallest standard deviation; keeps constant series from dividing by 0.",
    )


class SurpriseDetector(LastScore, Detector[SurpriseParams]):
    """The largest of several z-scores, each against its habit in this series, at the onset."""

    name = "surprise"
    version = 2
    alert_threshold = 0.8  # just above its NAB low-FP corpus threshold (0.779)
    params_model = SurpriseParams

    def __init__(self, params: SurpriseParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        alpha = alpha_for(p.half_life)
        self._level = EwMoments(alpha)
        self._drift = EwMoments(alpha)
        self._window: deque[float] = deque(maxlen=p.drift_window)
        daily_alpha = alpha_for(p.daily_half_life)
        self._daily = [EwMoments(daily_alpha) for _ in range(p.daily_slots)]
        self._warmup_values: list[float] = []
        self._previous: float | None = None
        # the parts below are built only when a feature or param reads them (else None or
        # empty): the defaults use none of them, about 7 KB a series (docs/benchmarks.md)
        self._step = EwMoments(alpha) if "step" in p.features else None
        self._context = (
            ContextMemory(p.context_length, p.context_bins, p.context_capacity)
            if "context" in p.features
            else None
        )
        # calibrate: the last `smooth` raw surprises and a calibrator per feature
        self._raws: dict[str, deque[float]] = {}
        self._calibrators: dict[str, RankCalibrator] = {}
        if p.calibrate:
            self._raws = {name: deque[float](maxlen=p.smooth) for name in p.features}
            self._calibrators = {name: RankCalibrator(p.history) for name in p.features}
        self._rarity = RankCalibrator(p.history) if p.rarity_power else None
        size_alpha = alpha_for(p.scale_half_life)
        prior = gaussian_moment(p.scale_power) if p.scale_power else 0.0
        self._sizes = {
            name: EwMoments(size_alpha, weight=p.scale_prior, mean=prior) for name in p.features
        }
        self._gate = OnsetGate(p.fire, p.quiet, p.damp)
        self._last_score = COLD
        self._last_fields = None
        # the params the per-point path reads, as plain attributes
        self._feature_codes = tuple(FEATURE_CODES[name] for name in p.features)
        self._with_context = "context" in p.features
        self._log_values, self._calibrate = p.log_values, p.calibrate
        self._warmup, self._min_scale = p.warmup, p.min_scale
        self._drift_ready = p.warmup + p.drift_window
        self._daily_slots, self._daily_min_count = p.daily_slots, p.daily_min_count
        self._scale_power, self._scale_floor = p.scale_power, p.scale_floor
        self._scale_root = 1.0 / p.scale_power if p.scale_power else 0.0
        self._square_threshold = p.threshold * p.threshold
        self._rarity_power = p.rarity_power
        self._size_list = [self._sizes[name] for name in p.features]

    def update(self, ts_us: int, value: float) -> Score:
        if not is_reading(value):
            return self._last
        fields = self.advance(ts_us, value)
        if fields is None:
            return COLD
        return self._last

    def advance(self, ts_us: int, value: float) -> tuple[float, float, float, float] | None:
        """``update`` for a finite ``value`` without building a ``Score``: its score,
        expected value, lower and upper bound, or None while warming up (a ``COLD`` score).

        The per-point path of the stream's default detector (``novelty`` runs one of these
        per series), so the arithmetic of ``EwMoments``, ``band_score``, ``max`` and ``min``
        is written out here and in ``_measure``, in the same order: the same numbers, bit
        for bit (``tests/unit/test_detector_pinned_scores.py``).
        """
        level = self._level
        expected = level.mean
        m2, weight = level.m2, level.weight
        std = math.sqrt((0.0 if m2 < 0.0 else m2) / weight if weight > 0 else 0.0)
        if self._log_values:
            value = math.log1p(0.0 if value < 0.0 else value)
        measured = self._measure(ts_us, value)
        if measured is None:
            return None
        if isinstance(measured, list):  # calibrate: each raw surprise ranked in its own past
            surprise = 1.0 - self._calibrated_tail(measured)
        else:
            square = measured * measured
            surprise = square / (square + self._square_threshold)  # band_score
            rarity = self._rarity  # built when rarity_power > 0
            if rarity is not None:
                surprise = rarity.weigh(surprise, measured, self._rarity_power)
        score = self._gate.gate(surprise)
        score = score if score > 0.0 else 0.0  # min(1.0, max(0.0, score))
        score = score if score < 1.0 else 1.0
        band = BAND_Z * std
        fields = (score, expected, expected - band, expected + band)
        self._last_fields = fields
        return fields

    def _calibrated_tail(self, raws: list[float | None]) -> float:
        tails = []
        for name, raw in zip(self.params.features, raws, strict=True):
            if raw is None:
                continue
            recent = self._raws[name]
            recent.append(raw)
            smoothed = sum(recent) / len(recent)
            calibrator = self._calibrators[name]
            tails.append(calibrator.tail(smoothed))
            calibrator.add(smoothed)
        return min(1.0, len(tails) * min(tails)) if tails else 1.0

    def _measure(self, ts_us: int, value: float) -> float | list[float | None] | None:
        """Learn from ``value``; None while warming up, else (``calibrate``) its raw
        surprises in the order of ``features`` (None: a feature not ready yet) or the
        largest of them, each over its feature's typical size (``scale_power``; the sizes
        learn from them)."""
        previous, self._previous = self._previous, value
        step = 0.0 if previous is None else value - previous
        window = self._window
        window.append(value)
        short = sum(window) / len(window)
        level = self._level
        slot = self._daily[(ts_us % US_PER_DAY) * self._daily_slots // US_PER_DAY]
        warm = level.count >= self._warmup
        raws: list[float | None] | None = [] if self._calibrate else None
        top: float | None = None  # the largest raw (max(raws, default=0.0))
        scaled_top = 0.0  # the largest raw over its typical size
        if warm:
            floor = self._min_scale
            power, root, size_floor = self._scale_power, self._scale_root, self._scale_floor
            moments: EwMoments | None  # None: the context feature
            for feature, size in zip(self._feature_codes, self._size_list, strict=True):
                if feature == LEVEL:
                    moments, x = level, value
                elif feature == DRIFT:
                    moments, x = self._drift, short
                    if moments.count < self._drift_ready:
                        if raws is not None:
                            raws.append(None)
                        continue  # no raw: its typical size does not learn either
                elif feature == DAILY:
                    moments, x = slot, value
                elif feature == STEP:
                    moments, x = self._step, step
                else:
                    moments = None
                if moments is None:  # context (a feature: its memory is built)
                    context = cast(ContextMemory, self._context)
                    if context.origin is None:
                        context.start(self._warmup_values)
                        self._warmup_values = []
                    raw = context.novelty(value)
                elif feature == DAILY and moments.count < self._daily_min_count:
                    raw = 0.0
                else:  # moments.z(x, floor), written out
                    m2, weight = moments.m2, moments.weight
                    sd = math.sqrt((0.0 if m2 < 0.0 else m2) / weight if weight > 0 else 0.0)
                    raw = abs(x - moments.mean) / (floor if floor > sd else sd)
                    raw = MAX_Z if raw > MAX_Z else raw
                if raws is not None:
                    raws.append(raw)
                elif power:  # raw / max(typical, floor), then size.add(raw**power)
                    typical = size.mean**root
                    scaled = raw / (size_floor if size_floor > typical else typical)
                    if scaled > scaled_top:
                        scaled_top = scaled
                    size_value = raw**power
                    keep = 1.0 - size.alpha
                    size.weight = keep * size.weight + 1.0
                    delta = size_value - size.mean
                    size.mean += delta / size.weight
                    size.m2 = keep * size.m2 + delta * (size_value - size.mean)
                    size.count += 1
                elif top is None or raw > top:
                    top = raw
        elif self._with_context:
            self._warmup_values.append(value)
        level.add(value)
        step_moments = self._step  # built when step is a feature
        if step_moments is not None and previous is not None:
            step_moments.add(step)
        self._drift.add(short)
        slot.add(value)
        if not warm:
            return None
        if raws is not None:
            return raws
        if self._scale_power:
            return scaled_top
        return 0.0 if top is None else top

    def _export_state(self) -> dict[str, Any]:
        """The memory; the entries of parts the params do not use ("step", "context" with
        "warmup_values", "raws" with "calibrators", "rarity") are left out (until
        2026-12-07 they were written, empty or never read: ``_restore_state`` accepts both)."""
        state: dict[str, Any] = {
            "level": self._level.to_list(),
            "drift": self._drift.to_list(),
            "daily": [[m.count, m.weight, m.mean, m.m2] for m in self._daily],  # to_list()
            "window": list(self._window),
            "previous": self._previous,
            "sizes": {name: m.to_list() for name, m in self._sizes.items()},
            "gate": self._gate.to_list(),
            "last": self._last_dict(),
        }
        if self._step is not None:
            state["step"] = self._step.to_list()
        if self._context is not None:
            state["context"] = self._context.to_dict()
            state["warmup_values"] = list(self._warmup_values)
        if self._calibrate:
            state["raws"] = {name: list(values) for name, values in self._raws.items()}
            state["calibrators"] = {name: c.to_list() for name, c in self._calibrators.items()}
        if self._rarity is not None:
            state["rarity"] = self._rarity.to_list()
        return state

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        p = self.params
        alpha = alpha_for(p.half_life)
        self._level = EwMoments.from_list(alpha, state["level"])
        if self._step is not None:
            self._step = EwMoments.from_list(alpha, state["step"])
        self._drift = EwMoments.from_list(alpha, state["drift"])
        daily_alpha = alpha_for(p.daily_half_life)
        self._daily = [EwMoments.from_list(daily_alpha, m) for m in state["daily"]]
        self._window = deque((float(v) for v in state["window"]), maxlen=p.drift_window)
        if self._context is not None:
            self._context.restore(state["context"])
            self._warmup_values = [float(v) for v in state["warmup_values"]]
        previous = state["previous"]
        self._previous = None if previous is None else float(previous)
        if p.calibrate:
            self._raws = {
                name: deque((float(v) for v in state["raws"][name]), maxlen=p.smooth)
                for name in p.features
            }
            self._calibrators = {
                name: RankCalibrator(p.history, [float(v) for v in state["calibrators"][name]])
                for name in p.features
            }
        if self._rarity is not None:
            self._rarity = RankCalibrator(p.history, [float(v) for v in state["rarity"]])
        size_alpha = alpha_for(p.scale_half_life)
        self._sizes = {
            name: EwMoments.from_list(size_alpha, state["sizes"][name]) for name in p.features
        }
        self._size_list = [self._sizes[name] for name in p.features]
        self._gate = OnsetGate.from_list(p.fire, p.quiet, p.damp, state["gate"])
        self._last = Score.from_dict(state["last"])


def gaussian_moment(power: float) -> float:
    """``E|Z|^power`` for a standard normal ``Z``: the typical size of noise's z-scores."""
    return float(2.0 ** (power / 2.0) * math.gamma((power + 1.0) / 2.0) / math.sqrt(math.pi))
