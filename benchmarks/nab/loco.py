"""Leave one category out: the score a threshold (and a choice of parameters) earns on unseen series.

NAB's own optimiser picks the threshold on the very series it then scores, which says how well
a detector *ranks*; a user deploys one threshold on devices nobody labelled. So, for each of
the corpus' categories in turn:

* ``loco``: the threshold is chosen (NAB's optimiser, per profile) on the other categories
  and the held-out category is scored at it;
* ``select``: the same, but the variant (the parameters) is chosen too, from several
  candidates, on the other categories only: the honest estimate of a tuning procedure.

The held-out raw scores of all folds are summed and normalised over all windows, as NAB
normalises a corpus (a category without windows, like ``artificialNoAnomaly``, only costs
its false alarms). ``at_threshold`` scores the whole corpus at one fixed threshold (the one
a detector ships with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks.nab.scoring import Profile, ScoredFile, best_threshold, normalise, score_at


def category(name: str) -> str:
    """``realTweets/Twitter_volume_AAPL.csv`` -> ``realTweets``."""
    return name.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Fold:
    """One held-out category: what was chosen on the others, and what it earned there."""

    held_out: str
    variant: str
    threshold: float
    raw: float  # on the held-out category


@dataclass(frozen=True, slots=True)
class LocoResult:
    """The folds of one profile and their pooled, normalised score."""

    profile: str
    normalised: float
    folds: tuple[Fold, ...]

    @property
    def thresholds(self) -> tuple[float, float]:
        """Smallest and largest threshold chosen over the folds."""
        chosen = [f.threshold for f in self.folds]
        return min(chosen), max(chosen)


def _split(files: Sequence[ScoredFile], held_out: str) -> tuple[list[ScoredFile], list[ScoredFile]]:
    train = [f for f in files if category(f.name) != held_out]
    test = [f for f in files if category(f.name) == held_out]
    return train, test


def select(candidates: Mapping[str, Sequence[ScoredFile]], profile: Profile) -> LocoResult:
    """Per fold, the candidate and threshold best on the other categories, scored on the held-out one.

    Every candidate must hold the same series in the same order. Ties go to the candidate
    listed first.
    """
    first = next(iter(candidates.values()))
    categories = sorted({category(f.name) for f in first})
    folds = []
    for held_out in categories:
        best: tuple[float, str, float] | None = None  # train raw, variant, threshold
        for name, files in candidates.items():
            train, _ = _split(files, held_out)
            threshold, raw = best_threshold(train, profile)
            if best is None or raw > best[0]:
                best = (raw, name, threshold)
        assert best is not None
        _, name, threshold = best
        _, test = _split(candidates[name], held_out)
        folds.append(Fold(held_out, name, threshold, score_at(test, profile, threshold)))
    windows = sum(len(f.windows) for f in first)
    total = sum(f.raw for f in folds)
    return LocoResult(profile.name, normalise(total, windows, profile), tuple(folds))


def loco(name: str, files: Sequence[ScoredFile], profile: Profile) -> LocoResult:
    """One variant: the threshold chosen on the other categories, for each category in turn."""
    return select({name: files}, profile)


def at_threshold(files: Sequence[ScoredFile], profile: Profile, threshold: float) -> float:
    """The normalised score of the whole corpus at a fixed threshold."""
    windows = sum(len(f.windows) for f in files)
    return normalise(score_at(files, profile, threshold), windows, profile)
