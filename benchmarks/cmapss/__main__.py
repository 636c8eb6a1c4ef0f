"""``python -m benchmarks.cmapss [--sets FD001,FD002] [--inputs history,window] [--seeds 3]``.

Trains the stream's RUL model (``sentio_iot.streams.rul``, the code `sentio train rul` runs)
on each C-MAPSS set with several seeds, evaluates on the last window of each test engine, and
prints the figures beside the published ones. ``--inputs``: ``history`` is the shipped model
(the window plus each engine's age and drift since its first cycles), ``window`` the
window-only input of the published protocol; both by default, side by side. Training uses
``--threads`` CPU threads (2: the issue's budget). The figures in docs/ml-rul.md come from
this command.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.cmapss import DEFAULT_DATA
from sentio_iot.cli.train_cmd import limit_threads, training_metadata
from sentio_iot.streams.rul.cmapss import nasa_score, rmse
from sentio_iot.streams.rul.model import TrainingOptions, predict
from sentio_iot.streams.rul.store import ModelStore
from sentio_iot.streams.rul.training import HISTORY, SeedResult, load_dataset, train_seed

# RMSE on FD001 / FD002 as published (from the issue), for orientation.
PUBLISHED = {
    "CNN": (18.45, 30.29),
    "deep LSTM": (16.14, 24.49),
    "DCNN": (12.61, 22.36),
    "MS-DCNN": (11.44, 19.35),
    "TCNN-Transformer": (11.40, 14.75),
    "STAR": (10.61, 13.47),
}
GOAL = {"FD001": 11.5, "FD002": 15.0}
INPUTS = {"history": HISTORY, "window": ()}


def _spread(values: list[float], digits: int = 2) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def run_set(
    name: str,
    inputs: str,
    data_dir: Path,
    seeds: list[int],
    options: TrainingOptions,
    store: Path | None,
) -> list[str]:
    """Train and evaluate one set with one kind of input; the row of the results table."""
    began = time.perf_counter()
    files = [data_dir / f"{kind}_{name}.txt" for kind in ("train", "test", "RUL")]
    data = load_dataset(*files, context=INPUTS[inputs])
    print(f"{name}, {inputs} inputs ({data.preprocessing.inputs} per cycle):", flush=True)
    results: list[SeedResult] = []
    predictions = []
    for seed in seeds:
        result = train_seed(data, seed, options)
        results.append(result)
        predictions.append(predict(result.model, data.test_x))
        print(
            f"  {name} seed {seed}: RMSE {result.rmse:.2f} (uncapped truth {result.rmse_uncapped:.2f}), "
            f"score {result.score:.0f}, {result.epochs} epochs, {result.seconds:.0f} s",
            flush=True,
        )
    ensemble = np.mean(predictions, axis=0)
    total = time.perf_counter() - began
    if store is not None and inputs == "history":  # the best validation RMSE, as `sentio train rul`
        best = min(results, key=lambda r: r.validation_rmse)
        metadata = training_metadata(data, results, best, files, options, total)
        saved = ModelStore(store).save(
            f"cmapss_{name.lower()}", best.model, data.preprocessing, metadata
        )
        print(f"  saved {saved.name} version {saved.version} (seed {best.seed}) in {saved.path}")
    return [
        name,
        inputs,
        str(len(seeds)),
        _spread([r.rmse for r in results]),
        _spread([r.score for r in results], 0),
        f"{rmse(ensemble, data.test_y):.2f} / {nasa_score(ensemble, data.test_y):.0f}",
        _spread([r.rmse_uncapped or 0.0 for r in results]),
        f"{statistics.mean(r.seconds for r in results):.0f}",
        f"{total:.0f}",
        f"{GOAL[name]:g}" if name in GOAL else "-",
    ]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cmapss", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="C-MAPSS folder")
    parser.add_argument("--sets", default="FD001,FD002", help="comma-separated sets")
    parser.add_argument(
        "--inputs", default="history,window", help="comma-separated: history, window (see above)"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=TrainingOptions().epochs)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow CPU threads")
    parser.add_argument("--store", type=Path, default=None, help="also store each set's model here")
    args = parser.parse_args(argv)
    inputs = args.inputs.split(",")
    unknown = sorted(set(inputs) - set(INPUTS))
    if unknown:
        parser.error(f"--inputs: unknown {', '.join(unknown)}; use history, window or both")
    limit_threads(args.threads)
    options = TrainingOptions(epochs=args.epochs)
    seeds = list(range(1, args.seeds + 1))
    rows = [
        run_set(name, kind, args.data, seeds, options, args.store)
        for name in args.sets.split(",")
        for kind in inputs
    ]
    print()
    print_table(
        [
            "set",
            "inputs",
            "seeds",
            "RMSE",
            "NASA score",
            "ensemble RMSE / score",
            "RMSE, uncapped truth",
            "s/seed",
            "total s",
            "goal RMSE",
        ],
        rows,
    )
    print()
    print_table(
        ["published (RMSE)", "FD001", "FD002"],
        [[model, f"{a:.2f}", f"{b:.2f}"] for model, (a, b) in PUBLISHED.items()],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
