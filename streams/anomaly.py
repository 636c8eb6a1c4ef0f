"""Anomaly scoring in the stream: one online detector per (device, metric), no Kafka.

For each numeric metric of a reading, :class:`AnomalyScorer` feeds the series' detector
(from the registry, ``streams.anomaly.detector``) and returns an :class:`Anomaly` when the
score reaches the threshold. Everything a series remembers is :class:`Series` (the
detector's ``to_state()`` plus the episode bookkeeping), plain JSON, so the agent keeps it in
a table keyed ``device|metric`` and a restarted worker continues where the old one stopped.
A detector warms up by itself: during warm-up it scores 0 and nothing is emitted.

No anomaly storm: **one anomaly per episode**. An episode is a run of readings at or above
the threshold; only its first reading is emitted. An episode that starts less than
``refractory_s`` (event time) after the series' last emitted anomaly is not emitted at all
(a flapping series gives one anomaly per refractory period); ``suppressed`` counts those.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.streams.detectors.base import Detector, StateError
from sentio_iot.streams.detectors.registry import create_detector

log = logging.getLogger(__name__)

PARAMS_PATH = "streams.anomaly.params"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One anomalous value, the fields of ``schemas/avro/Anomaly.avsc``."""

    device_id: str
    metric: str
    ts: int
    value: float
    score: float
    threshold: float
    expected: float | None
    lower: float | None
    upper: float | None
    detector: str
    detector_version: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "metric": self.metric,
            "ts": self.ts,
            "value": self.value,
            "score": self.score,
            "threshold": self.threshold,
            "expected": self.expected,
            "lower": self.lower,
            "upper": self.upper,
            "detector": self.detector,
            "detector_version": self.detector_version,
            "labels": dict(self.labels),
        }


@dataclass(slots=True)
class Series:
    """What one (device, metric) remembers: its detector and where its episode stands."""

    detector: Detector[Any]
    in_episode: bool = False
    last_emitted_us: int | None = None
    suppressed: int = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "detector": self.detector.to_state(),
            "in_episode": self.in_episode,
            "last_emitted_us": self.last_emitted_us,
            "suppressed": self.suppressed,
        }


def series_key(device_id: str, metric: str) -> str:
    """The table key of a series: ``device|metric``."""
    return f"{device_id}|{metric}"


class AnomalyScorer:
    """Scores readings with one detector per series; the settings are checked on creation."""

    def __init__(self, settings: AnomalySettings) -> None:
        self.settings = settings
        prototype = create_detector(settings.detector, settings.params, path=PARAMS_PATH)
        self._class = type(prototype)
        self._params = prototype.params  # validated once, shared (params are frozen)
        self.detector_name = prototype.name
        self._params_state = prototype.to_state()["params"]
        self.detector_version = detector_version(prototype)
        self._wanted: dict[str, bool] = {}
        # the settings' threshold, else the one the detector's authors chose for it
        self.threshold = (
            settings.threshold if settings.threshold is not None else prototype.alert_threshold
        )

    def new_series(self) -> Series:
        return Series(self._class(self._params))

    def restore(self, state: Mapping[str, Any] | None) -> Series:
        """A series from its stored state; a state of another detector, version or params
        starts a fresh detector (it warms up again) and keeps the episode bookkeeping."""
        if state is None:
            return self.new_series()
        stored = state.get("detector") or {}
        last = state.get("last_emitted_us")
        series = Series(
            self._fresh_or_restored(stored),
            in_episode=bool(state.get("in_episode", False)),
            last_emitted_us=None if last is None else int(last),
            suppressed=int(state.get("suppressed", 0)),
        )
        return series

    def _fresh_or_restored(self, stored: Mapping[str, Any]) -> Detector[Any]:
        same = (
            stored.get("detector") == self.detector_name
            and stored.get("version") == self._class.version
            and stored.get("params") == self._params_state
        )
        if not same:
            log.info("detector changed for a series (%s): warming up again", stored.get("detector"))
            return self._class(self._params)
        try:
            return self._class.from_state(stored)
        except StateError as exc:
            log.warning("detector state dropped: %s", exc)
            return self._class(self._params)

    def dump_device(self, series: Mapping[str, Series]) -> dict[str, Any]:
        """The series of one device as one compact state: the detector and its params are
        named once (by ``detector_version``), each metric keeps only its memory."""
        return {
            "detector": self.detector_name,
            "detector_version": self.detector_version,
            "series": {
                metric: [
                    one.detector.memory(),
                    one.in_episode,
                    one.last_emitted_us,
                    one.suppressed,
                ]
                for metric, one in series.items()
            },
        }

    def restore_device(self, state: Mapping[str, Any]) -> dict[str, Series]:
        """The series of one device from :meth:`dump_device`; another detector, version or
        params starts fresh detectors (they warm up again) and keeps the episode bookkeeping."""
        same = (
            state.get("detector") == self.detector_name
            and state.get("detector_version") == self.detector_version
        )
        if not same:
            log.info("detector changed for a device (%s): warming up again", state.get("detector"))
        restored: dict[str, Series] = {}
        for metric, (memory, in_episode, last, suppressed) in state.get("series", {}).items():
            detector: Detector[Any] | None = None
            if same:
                try:
                    detector = self._class.from_memory(self._params, memory)
                except StateError as exc:
                    log.warning("detector state dropped: %s", exc)
            if detector is None:
                detector = self._class(self._params)
            restored[str(metric)] = Series(
                detector,
                in_episode=bool(in_episode),
                last_emitted_us=None if last is None else int(last),
                suppressed=int(suppressed),
            )
        return restored

    def wants(self, metric: str) -> bool:
        """Whether the metric is scored (include/exclude patterns; remembered per name)."""
        known = self._wanted.get(metric)
        if known is None:
            known = self._wanted[metric] = self._matches(metric)
        return known

    def _matches(self, metric: str) -> bool:
        if any(fnmatch.fnmatchcase(metric, p) for p in self.settings.exclude):
            return False
        include = self.settings.include
        return not include or any(fnmatch.fnmatchcase(metric, p) for p in include)

    def observe(
        self,
        series: Series,
        device_id: str,
        metric: str,
        ts_us: int,
        value: float,
        labels: Mapping[str, str],
    ) -> Anomaly | None:
        """Score one value and learn from it; the Anomaly when an episode starts."""
        detector = series.detector
        score = detector.observe(ts_us, value)  # -1.0 while not warm
        threshold = self.threshold
        if score < 0.0 or score < threshold:
            series.in_episode = False
            return None
        if series.in_episode:
            return None
        result = detector.latest()
        series.in_episode = True
        last = series.last_emitted_us
        if last is not None and ts_us - last < self.settings.refractory_s * 1_000_000:
            series.suppressed += 1
            return None
        series.last_emitted_us = ts_us
        return Anomaly(
            device_id=device_id,
            metric=metric,
            ts=ts_us,
            value=value,
            score=result.score,
            threshold=threshold,
            expected=result.expected,
            lower=result.lower,
            upper=result.upper,
            detector=self.detector_name,
            detector_version=self.detector_version,
            labels=dict(labels),
        )

    def scorable(self, reading: Mapping[str, Any]) -> list[tuple[str, float]]:
        """The (metric, value) pairs of a decoded Reading record this scorer scores."""
        pairs = []
        wanted, skip_bad = self._wanted, self.settings.skip_bad_quality
        for metric in reading["metrics"]:
            value = metric.get("value")
            if value is None:
                continue
            name = metric["name"]
            known = wanted.get(name)
            if not (self.wants(name) if known is None else known):
                continue
            if skip_bad and metric.get("quality") == "BAD":
                continue
            pairs.append((str(name), float(value)))
        return pairs


def detector_version(detector: Detector[Any]) -> str:
    """``<version>-<8 hex of the params>``: scores of other params can be told apart."""
    params = json.dumps(detector.to_state()["params"], sort_keys=True, separators=(",", ":"))
    return f"{detector.version}-{hashlib.sha256(params.encode()).hexdigest()[:8]}"
