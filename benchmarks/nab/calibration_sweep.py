"""Sweep the calibrated detector's settings on NAB, chosen by leave-one-category-out.

    python -m benchmarks.nab.calibration_sweep [--base novelty] [--grid small|full]

The base detector's scores depend only on the base's params, so each base is run once per
series (cached under ``benchmarks/nab/results/``) and replayed into a ``CalibratedDetector``
per setting: the same arithmetic as the stream, without re-running the base. Prints per
setting the re-tuned corpus score and the leave-one-category-out score (standard and low FP),
then the score of the whole selection procedure (setting and threshold chosen on five
categories, the sixth scored) with what each fold chose.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.nab.__main__ import DEFAULT_DATA, DEFAULT_RESULTS
from benchmarks.nab.corpus import Series, load_corpus
from benchmarks.nab.loco import LocoResult, loco, select
from benchmarks.nab.scoring import PROFILES, ScoredFile, score_corpus
from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.calibrated import CalibratedDetector, CalibratedParams
from sentio_iot.streams.detectors.registry import create_detector, detector_class


class Replay:
    """Stands in for the base detector: answers its recorded scores in order."""

    def __init__(self, scores: Sequence[Score]) -> None:
        self._scores = iter(scores)

    def update(self, ts_us: int, value: float) -> Score:
        return next(self._scores)


def base_scores(
    base: str, params: dict[str, Any], corpus: Sequence[Series], cache: Path
) -> list[list[Score]]:
    version = detector_class(base).version  # a new version scores differently: a new cache
    key = json.dumps([base, version, params, [s.name for s in corpus]], sort_keys=True)
    path = cache / f"base-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pickle"
    if path.exists():
        stored: list[list[Score]] = pickle.loads(path.read_bytes())
        return stored
    full = {**params}
    if "quiet" not in full and base != "robust_zscore":
        full["quiet"] = 0
    out = []
    for series in corpus:
        detector = create_detector(base, full)
        out.append(
            [
                detector.update(ts, v)
                for ts, v in zip(series.ts_us, series.values.tolist(), strict=True)
            ]
        )
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def calibrated_files(
    params: dict[str, Any], corpus: Sequence[Series], bases: list[list[Score]]
) -> list[ScoredFile]:
    files = []
    validated = CalibratedParams.model_validate(params)
    for series, scores in zip(corpus, bases, strict=True):
        detector = CalibratedDetector(validated)
        detector._base = Replay(scores)  # type: ignore[assignment]
        out = [
            detector.update(ts, v).score
            for ts, v in zip(series.ts_us, series.values.tolist(), strict=True)
        ]
        files.append(ScoredFile(series.name, np.asarray(out, dtype=np.float64), series.windows))
    return files


Grid = dict[str, list[Any]]
# every field the calibration has is named, so a grid's figures do not move with the defaults
TAIL: Grid = {
    "method": ["tail"],
    "transform": ["odds", "log_odds"],
    "floor": [0.0, 0.2],
    "half_life": [1000.0, 10000.0],
    "warmup": [100],
    "digits": [10.0],
    "fire": [0.1, 0.3],
    "quiet": [50, 150],
}
LIKELIHOOD: Grid = {
    "method": ["likelihood"],
    "transform": ["score"],
    "half_life": [1000.0, 10000.0],
    "window": [1, 10],
    "warmup": [100],
    "digits": [10.0],
    "fire": [0.1, 0.3],
    "quiet": [50],
}
RANK: Grid = {
    "method": ["rank"],
    "transform": ["log_odds"],
    "rank_history": [1000],
    "warmup": [100],
    "digits": [10.0],
    "fire": [0.1],
    "quiet": [50],
}
GRIDS: dict[str, list[Grid]] = {
    "small": [{**TAIL, "transform": ["log_odds"], "half_life": [1000.0], "quiet": [50]}],
    "full": [TAIL, LIKELIHOOD, RANK],
}


def settings(grids: list[Grid]) -> Iterator[dict[str, Any]]:
    for grid in grids:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))


def _fmt(result: LocoResult) -> str:
    low, high = result.thresholds
    return f"{result.normalised:.1f} ({low:.3f}-{high:.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nab.calibration_sweep")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--base", default="novelty")
    parser.add_argument("--base-params", default="{}", help="the base's params as JSON")
    parser.add_argument(
        "--grid", default="small", help=f"{', '.join(GRIDS)} or one grid as JSON (field: values)"
    )
    parser.add_argument("--series", nargs="*", help="only these series")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_RESULTS, help="folder of the base scores' cache"
    )
    args = parser.parse_args(argv)
    grid = GRIDS[args.grid] if args.grid in GRIDS else [json.loads(args.grid)]
    corpus = load_corpus(args.data, args.series)
    base_params = json.loads(args.base_params)
    began = time.process_time()
    bases = base_scores(args.base, base_params, corpus, args.cache)
    print(f"base {args.base} {base_params}: {time.process_time() - began:.0f} s CPU", flush=True)
    std, low_fp = PROFILES["standard"], PROFILES["reward_low_FP_rate"]
    candidates: dict[str, list[ScoredFile]] = {}
    print("| setting | corpus std | corpus low FP | LOCO std (thresholds) | LOCO low FP |")
    print("|---|---:|---:|---|---|")
    for setting in settings(grid):
        params = {"base": args.base, "base_params": base_params, **setting}
        files = calibrated_files(params, corpus, bases)
        name = json.dumps(setting, separators=(",", ":"))
        candidates[name] = files
        print(
            f"| {name} | {score_corpus(files, std).normalised:.1f} "
            f"| {score_corpus(files, low_fp).normalised:.1f} "
            f"| {_fmt(loco(name, files, std))} | {_fmt(loco(name, files, low_fp))} |",
            flush=True,
        )
    for profile in (std, low_fp):
        chosen = select(candidates, profile)
        print(f"\nselection by {profile.name}: {chosen.normalised:.1f}")
        for fold in chosen.folds:
            print(f"  {fold.held_out}: {fold.variant} at {fold.threshold:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
