"""How often a detector alerts on pure Gaussian noise, per alert threshold.

    python benchmarks/noise_alerts.py [--detector surprise] [--params JSON] [--series 5]
                                      [--readings 20000] [--thresholds 0.7,0.75,0.8,0.85]

A false-alarm floor for the stream's ``streams.anomaly.threshold``: each series is
``N(20, 1)`` noise (seeded, so every run sees the same numbers), one reading per five
minutes, fed to a fresh detector built through the stream's registry. Prints alerts (scores
at or above the threshold) per 10,000 readings, during the first 2,000 readings (start-up)
and after them (steady state).
"""

from __future__ import annotations

import argparse
import json
import random

from sentio_iot.streams.detectors.registry import create_detector

STEP_US = 300_000_000
START_UP = 2000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="surprise")
    parser.add_argument("--params", default="{}", help="detector params as JSON")
    parser.add_argument("--series", type=int, default=5)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--thresholds", default="0.7,0.75,0.8,0.85")
    args = parser.parse_args(argv)
    if args.readings <= START_UP:
        parser.error(f"--readings must exceed the {START_UP} start-up readings")
    thresholds = [float(t) for t in args.thresholds.split(",")]
    start_up = dict.fromkeys(thresholds, 0)
    steady = dict.fromkeys(thresholds, 0)
    for seed in range(args.series):
        rng = random.Random(seed)
        detector = create_detector(args.detector, json.loads(args.params))
        for i in range(args.readings):
            score = detector.update(i * STEP_US, 20.0 + rng.gauss(0.0, 1.0)).score
            counts = start_up if i < START_UP else steady
            for t in thresholds:
                counts[t] += score >= t
        print(f"  series {seed + 1}/{args.series} done", flush=True)
    per = 10_000 / args.series
    print(f"{args.detector} {args.params}: alerts per 10,000 readings of N(0, 1) noise")
    print("| threshold | first 2,000 readings | after them |")
    print("|---:|---:|---:|")
    for t in thresholds:
        after = steady[t] * per / (args.readings - START_UP)
        shown = f"{t:.2f}" if round(t, 2) == t else f"{t:g}"  # 0.80, but 0.202
        print(f"| {shown} | {start_up[t] * per / START_UP:.1f} | {after:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
