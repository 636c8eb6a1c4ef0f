"""Anomaly detectors on the main job's simulated plant, scored against its ground truth.

    python -m benchmarks.plant_alerts [--devices 24] [--hours 48] [--variants a,b,...]

The plant of ``sentio run`` (same seed, rate, anomaly rate and share of degrading machines,
one reading per 12 s of plant time) is stepped ``--hours`` plant hours without Kafka; every
numeric metric of every device is fed to a fresh detector per variant, as the stream's
anomaly agent would. An alert is a score at or above the variant's threshold. Per variant
the table gives: alerts, injected anomalies found (an alert on that device and metric
between its start and 60 s after its end), alerts inside a degrading machine's wear period,
and the other alerts (false alarms); then the same counted from the second plant day on,
when every series has seen a whole daily cycle.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.nab.variants import SURPRISE_V1
from sentio_iot.pipeline.plant import plant_entry
from sentio_iot.producers.simulate.anomalies import GroundTruthRow
from sentio_iot.producers.simulate.config import SimulateConfig
from sentio_iot.producers.simulate.plant import Plant
from sentio_iot.streams.detectors.registry import create_detector

START = datetime(2026, 11, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
AFTER_END_US = 60_000_000
# name: (detector, params, alert threshold)
VARIANTS: dict[str, tuple[str, dict[str, Any], float]] = {
    "surprise@0.8": ("surprise", {}, 0.8),
    "surprise@0.75": ("surprise", {}, 0.75),
    "surprise-v1@0.5": ("surprise", SURPRISE_V1, 0.5),
    "novelty@0.25": ("novelty", {}, 0.25),
    "novelty-no-learn-day@0.25": ("novelty", {"learn_s": 0.0}, 0.25),
    "novelty@0.202": ("novelty", {}, 0.202),
    "novelty@0.2": ("novelty", {}, 0.2),
    "novelty-v1@0.202": ("novelty", {"surprise_while_learning": False}, 0.202),
    "calibrated@0.2": ("calibrated", {}, 0.2),
    "calibrated@0.203": ("calibrated", {}, 0.203),
}

Series = dict[tuple[str, str], list[tuple[int, float]]]


def simulate(devices: int, hours: float) -> tuple[Series, list[GroundTruthRow], int]:
    entry = plant_entry(devices, 1.0, Path("unused.jsonl"), START)
    entry.pop("ground_truth_path")
    config = SimulateConfig.model_validate(entry)
    plant = Plant(config, int(START.timestamp() * 1_000_000))
    series: Series = defaultdict(list)
    truth: list[GroundTruthRow] = []
    for _ in range(int(hours * 3_600_000_000 / plant.step_us)):
        tick = plant.step()
        for reading in tick.readings:
            for metric in reading.metrics:
                if isinstance(metric.value, int | float) and not isinstance(metric.value, bool):
                    series[(reading.device_id, metric.name)].append(
                        (reading.ts_us, float(metric.value))
                    )
        truth += tick.truth
    return series, truth, plant.start_us


def evaluate(
    series: Series, truth: list[GroundTruthRow], start_us: int, variant: tuple[str, Any, float]
) -> dict[str, int]:
    detector_name, params, threshold = variant
    injected = [g for g in truth if g.kind not in ("degradation", "failure")]
    wear = [g for g in truth if g.kind == "degradation"]
    found: set[int] = set()
    counts = dict.fromkeys(("alerts", "wear", "other", "alerts2", "found2", "wear2", "other2"), 0)
    day2 = start_us + DAY_US
    for (device, metric), points in series.items():
        detector = create_detector(detector_name, params)
        mine = [(i, g) for i, g in enumerate(injected) if (g.device, g.metric) == (device, metric)]
        worn = [g for g in wear if (g.device, g.metric) == (device, metric)]
        for ts, value in points:
            if detector.update(ts, value).score < threshold:
                continue
            late = "2" if ts >= day2 else ""
            counts["alerts"] += 1
            counts["alerts2"] += bool(late)
            hits = [i for i, g in mine if g.start_us <= ts <= g.end_us + AFTER_END_US]
            if hits:
                found.update(hits)
            elif any(g.start_us <= ts <= g.end_us for g in worn):
                counts["wear"] += 1
                counts["wear2"] += bool(late)
            else:
                counts["other"] += 1
                counts["other2"] += bool(late)
    counts["found"] = len(found)
    counts["found2"] = sum(injected[i].start_us >= day2 for i in found)
    counts["injected"] = len(injected)
    counts["injected2"] = sum(g.start_us >= day2 for g in injected)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=24)
    parser.add_argument("--hours", type=float, default=48.0, help="plant hours simulated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=", ".join(VARIANTS))
    args = parser.parse_args(argv)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    series, truth, start_us = simulate(args.devices, args.hours)
    points = sum(len(p) for p in series.values())
    print(f"{len(series)} series, {points:,} readings, {args.hours:g} plant hours", flush=True)
    rows = []
    for name in names:
        began = time.process_time()
        c = evaluate(series, truth, start_us, VARIANTS[name])
        print(f"  {name}: {time.process_time() - began:.0f} s", flush=True)
        rows.append(
            f"| {name} | {c['alerts']:,} | {c['found']}/{c['injected']} | {c['wear']:,} "
            f"| {c['other']:,} | {c['alerts2']:,} | {c['found2']}/{c['injected2']} "
            f"| {c['wear2']:,} | {c['other2']:,} |"
        )
    print(
        "| variant@threshold | alerts | injected found | in wear | other | "
        "from day 2: alerts | found | in wear | other |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
