"""``python -m benchmarks.cmapss.inputs [--set FD001] [--seeds 3]``: choose the history inputs
without the test set.

Holds out 20 % of the training engines (a fixed draw), cuts each of them at 10 random cycles
(at least 31, as the test engines are cut), and trains the stream's RUL model (the code
``sentio train rul`` runs, its own early stopping inside the other engines) with each set of
history inputs: none (the window alone), age, drift, both. Prints the RMSE on the cut
engines' last windows per seed and as mean ± std. The shipped inputs (age and drift) were
chosen from this table; docs/ml-rul.md holds a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.cmapss import DEFAULT_DATA
from sentio_iot.cli.train_cmd import limit_threads
from sentio_iot.streams.rul.cmapss import Engine, read_engines
from sentio_iot.streams.rul.model import TrainingOptions
from sentio_iot.streams.rul.training import CAP, dataset_from_engines, train_seed

VARIANTS: dict[str, tuple[str, ...]] = {
    "window only": (),
    "age": ("age",),
    "drift": ("drift",),
    "age + drift": ("age", "drift"),
}
HELD_OUT_SHARE = 0.2
CUTS = 10  # per held-out engine
SHORTEST = 31  # cycles: the shortest FD001 test engine


def held_out_cuts(
    engines: list[Engine], rng: np.random.Generator
) -> tuple[list[Engine], list[Engine], np.ndarray]:
    """The training engines, the held-out engines cut like test engines, their true RUL."""
    count = max(1, round(HELD_OUT_SHARE * len(engines)))
    held = set(rng.choice(len(engines), size=count, replace=False).tolist())
    train = [e for i, e in enumerate(engines) if i not in held]
    cut_engines, truth = [], []
    for i in sorted(held):
        engine = engines[i]
        for cut in rng.choice(np.arange(SHORTEST, len(engine) + 1), size=CUTS, replace=False):
            cut_engines.append(
                replace(engine, cycles=engine.cycles[:cut], values=engine.values[:cut])
            )
            truth.append(float(len(engine) - cut))
    return train, cut_engines, np.asarray(truth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cmapss.inputs", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", default="FD001")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow CPU threads")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    engines = read_engines(args.data / f"train_{args.set}.txt")
    train, cut, truth = held_out_cuts(engines, np.random.default_rng(0))
    print(
        f"{args.set}: {len(train)} training engines, {len(engines) - len(train)} held out, "
        f"cut {CUTS} times each: {len(cut)} validation engines (RUL capped at {CAP:g})",
        flush=True,
    )
    rows = []
    for name, context in VARIANTS.items():
        data = dataset_from_engines(train, cut, truth, context=context)
        scores = []
        for seed in range(1, args.seeds + 1):
            began = time.perf_counter()
            result = train_seed(data, seed, TrainingOptions())
            scores.append(result.rmse)
            print(
                f"  {name}, seed {seed}: RMSE {result.rmse:.2f}, {result.epochs} epochs, "
                f"{time.perf_counter() - began:.0f} s",
                flush=True,
            )
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        cells = [name, str(data.preprocessing.inputs), " / ".join(f"{s:.2f}" for s in scores)]
        rows.append([*cells, f"{statistics.mean(scores):.2f} ± {spread:.2f}"])
    print()
    print("| inputs | per cycle | RMSE per seed | RMSE |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
