"""``python -m benchmarks.nab [--detector all|NAME,...] [--quick] [--data DIR]``.

Runs every variant (see ``variants.py``) over the NAB corpus, writes per-row scores under
``--results`` (NAB's layout) and prints one row per variant: the normalised NAB score for
each profile with the threshold re-tuned on the corpus, the leave-one-category-out score
(threshold chosen on five categories, the sixth scored at it, each in turn), the score at
the variant's shipped threshold, and the points scored per second of CPU. With several
variants it then prints the whole selection procedure left one category out: the variant
and threshold chosen on five categories, the sixth scored, per profile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.nab.corpus import QUICK_SERIES, load_corpus
from benchmarks.nab.loco import select
from benchmarks.nab.runner import half, run_variant, table
from benchmarks.nab.scoring import PROFILES
from benchmarks.nab.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nab"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nab", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB data folder")
    parser.add_argument(
        "--detector",
        default="all",
        help=f"'all' or comma-separated variants: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--quick", action="store_true", help="only a few short series")
    parser.add_argument("--series", nargs="*", help="only these series (category/file.csv)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="scores folder")
    parser.add_argument("--no-write", action="store_true", help="do not write per-row scores")
    parser.add_argument(
        "--halves",
        action="store_true",
        help="also score the even- and odd-indexed series apart (tune on one, check on the other)",
    )
    args = parser.parse_args(argv)

    names = list(VARIANTS) if args.detector == "all" else args.detector.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    only = args.series or (QUICK_SERIES if args.quick else None)
    if only and args.quick and args.series is None:
        available = {p.relative_to(args.data).as_posix() for p in args.data.glob("*/*.csv")}
        only = [name for name in only if name in available] or sorted(available)[:4]
    corpus = load_corpus(args.data, only)
    print(
        f"{len(corpus)} series, {sum(len(s.values) for s in corpus):,} rows, "
        f"{sum(len(s.windows) for s in corpus)} windows",
        flush=True,
    )
    runs = []
    for name in names:
        run = run_variant(VARIANTS[name], corpus, None if args.no_write else args.results)
        print(f"  {name}: {run.points_per_second:,.0f} points/s", file=sys.stderr, flush=True)
        runs.append(run)
    print(table(runs))
    if len(runs) > 1:
        print("\nleave one category out, variant and threshold chosen on the other five:")
        for name, profile in PROFILES.items():
            chosen = select({run.variant.name: run.files for run in runs}, profile)
            folds = ", ".join(f"{f.held_out}: {f.variant}@{f.threshold:.3f}" for f in chosen.folds)
            print(f"  {name}: {chosen.normalised:.1f} ({folds})")
    if args.halves:
        for label, start in (("even", 0), ("odd", 1)):
            print(f"\n{label}-indexed series only (sorted by name, from 0):")
            print(table([half(run, start) for run in runs]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
