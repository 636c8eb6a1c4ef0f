"""Feed NAB series to a detector one reading at a time and score the result.

The detector is built through the stream's own registry (``create_detector``), so the
benchmark measures exactly the code the anomaly agent runs.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.nab.corpus import Series
from benchmarks.nab.loco import LocoResult, at_threshold, loco
from benchmarks.nab.scoring import PROFILES, ProfileResult, ScoredFile, score_all_profiles
from sentio_iot.streams.detectors.registry import create_detector, detector_class


@dataclass(frozen=True, slots=True)
class Variant:
    """A named detector configuration: registry name, raw params and the threshold it ships
    with (None: the detector's own ``alert_threshold``)."""

    name: str
    detector: str
    params: Mapping[str, Any]
    threshold: float | None = None

    @property
    def shipped_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return detector_class(self.detector).alert_threshold


@dataclass(frozen=True, slots=True)
class VariantRun:
    """A variant's per-row scores on every series, its CPU time and its NAB results."""

    variant: Variant
    files: list[ScoredFile]
    points: int
    cpu_seconds: float
    results: dict[str, ProfileResult]

    @property
    def points_per_second(self) -> float:
        """Readings scored per second of this process's CPU time (all its threads)."""
        return self.points / self.cpu_seconds if self.cpu_seconds > 0 else float("inf")


def score_series(variant: Variant, series: Series) -> tuple[ScoredFile, float]:
    """A fresh detector fed every reading of one series; returns the scores and CPU time."""
    detector = create_detector(variant.detector, variant.params)
    update = detector.update
    values = series.values.tolist()
    started = time.process_time()
    scores = [update(ts, value).score for ts, value in zip(series.ts_us, values, strict=True)]
    cpu = time.process_time() - started
    return ScoredFile(series.name, np.asarray(scores, dtype=np.float64), series.windows), cpu


def run_variant(
    variant: Variant, corpus: Sequence[Series], results_dir: Path | None = None
) -> VariantRun:
    files, cpu = [], 0.0
    for series in corpus:
        scored, seconds = score_series(variant, series)
        files.append(scored)
        cpu += seconds
        if results_dir is not None:
            write_scores(results_dir / variant.name, series, scored)
    points = sum(len(f.scores) for f in files)
    return VariantRun(variant, files, points, cpu, score_all_profiles(files))


def loco_results(run: VariantRun) -> dict[str, LocoResult]:
    """Leave-one-category-out per profile (threshold chosen on the other categories)."""
    return {name: loco(run.variant.name, run.files, profile) for name, profile in PROFILES.items()}


def shipped_results(run: VariantRun) -> dict[str, float]:
    """The normalised score per profile at the variant's shipped threshold."""
    threshold = run.variant.shipped_threshold
    return {name: at_threshold(run.files, profile, threshold) for name, profile in PROFILES.items()}


def half(run: VariantRun, start: int) -> VariantRun:
    """The run scored on every other series from ``start`` (0: even, 1: odd); same CPU figures."""
    files = run.files[start::2]
    return replace(run, files=files, results=score_all_profiles(files))


def write_scores(folder: Path, series: Series, scored: ScoredFile) -> None:
    """NAB's results layout: ``<detector>/<category>/<detector>_<file>.csv``."""
    category, file = series.name.split("/", 1)
    path = folder / category / f"{folder.name}_{file}"
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.zeros(len(series.values), dtype=np.int64)
    for left, right in series.windows:
        label[left : right + 1] = 1
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value", "anomaly_score", "label"])
        for row in zip(
            series.timestamps, series.values.tolist(), scored.scores.tolist(), label, strict=True
        ):
            writer.writerow(row)


def _threshold(value: float) -> str:
    return "none" if value > 1.0 else f"{value:.3f}"


def table(runs: Sequence[VariantRun]) -> str:
    """The markdown table the benchmark prints: re-tuned, leave-one-category-out, shipped."""
    lines = [
        "| variant | detector | standard | reward_low_FP | reward_low_FN "
        "| LOCO std / low FP / low FN | LOCO thresholds std | shipped threshold "
        "| at shipped std / low FP / low FN | points/s/core "
        "| thresholds (std / low FP / low FN) |",
        "|---|---|---:|---:|---:|---|---|---:|---|---:|---|",
    ]
    for run in runs:
        r = run.results
        held = loco_results(run)
        low, high = held["standard"].thresholds
        shipped = shipped_results(run)
        lines.append(
            f"| {run.variant.name} | {run.variant.detector} "
            f"| {r['standard'].normalised:.1f} | {r['reward_low_FP_rate'].normalised:.1f} "
            f"| {r['reward_low_FN_rate'].normalised:.1f} "
            f"| {' / '.join(f'{held[p].normalised:.1f}' for p in PROFILES)} "
            f"| {_threshold(low)}-{_threshold(high)} | {run.variant.shipped_threshold:g} "
            f"| {' / '.join(f'{shipped[p]:.1f}' for p in PROFILES)} "
            f"| {run.points_per_second:,.0f} "
            f"| {' / '.join(_threshold(r[p].threshold) for p in PROFILES)} |"
        )
    return "\n".join(lines)
