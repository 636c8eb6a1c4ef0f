"""NAB v1.1 scoring, re-implemented from NAB's sweeper/optimizer/scorer (see SCORING.md).

Per file, every row gets a weight (``row_weights``):

* rows in the probationary period, ``min(floor(0.15 N), 750)`` rows, are not scored at all;
* a row inside window ``[L, R]`` (width ``W``) is worth
  ``tp * sigmoid(-(R - i + 1) / W) / sigmoid(-1)`` where ``sigmoid`` is NAB's scaled
  sigmoid: exactly ``tp`` at the left edge, close to 0 at the right edge;
* a row outside the windows costs ``fp * sigmoid(|i - R_prev| / (W_prev - 1))`` after a
  window (close to 0 just after it, -fp from three widths on) and ``-fp`` before the first.

At a threshold ``t`` a row is a detection when its score is ``>= t``. A window scores the
weight of its earliest detection (the largest weight among its detected rows) or ``-fn``
when none of its rows is detected; every detection outside the windows adds its (negative)
weight. One threshold per profile is chosen for the whole corpus: the one with the largest
summed score, the highest threshold on ties, starting from 1.1 (nothing detected). The raw
score is normalised so that the null detector (no detection) scores 0 and the perfect one
(the first row of every window and nothing else) scores 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

PROBATION_PERCENT = 0.15
PROBATION_MAX_ROWS = 750  # 0.15 * 5000: NAB caps the probation of long files
START_THRESHOLD = 1.1  # above every possible score: nothing detected
NO_WINDOW = -1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB cost matrix (profiles.json); tnWeight is unused by NAB's scoring."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


@dataclass(frozen=True, slots=True)
class ScoredFile:
    """One series as the scorer needs it: detector scores and windows as row index ranges."""

    name: str
    scores: FloatArray
    windows: tuple[tuple[int, int], ...]  # inclusive [first row, last row], in time order


@dataclass(frozen=True, slots=True)
class ProfileResult:
    """A profile's optimised threshold, raw and normalised scores and detection counts."""

    profile: str
    threshold: float
    raw: float
    normalised: float
    tp: int
    fp: int
    fn: int
    tn: int
    per_file: dict[str, float]


def probationary_length(rows: int) -> int:
    """Rows at the start of a file that are never scored."""
    return min(math.floor(PROBATION_PERCENT * rows), PROBATION_MAX_ROWS)


def scaled_sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: 1 far before, 0 at y = 0, -1 from y > 3 on."""
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def row_weights(
    rows: int, windows: Sequence[tuple[int, int]], profile: Profile
) -> tuple[FloatArray, IntArray]:
    """Each row's weight if detected and the index of its window (``NO_WINDOW`` outside).

    Probationary rows get window index ``NO_WINDOW`` and weight NaN: they are not scored.
    """
    weights = np.empty(rows, dtype=np.float64)
    window_of = np.full(rows, NO_WINDOW, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    before_any = -profile.fp_weight
    previous: tuple[int, int] | None = None  # (last row, width) of the last finished window
    pending = list(enumerate(windows))
    current = pending.pop(0) if pending else None
    for i in range(rows):
        if current is not None and i >= current[1][0]:
            k, (left, right) = current
            width = right - left + 1
            weights[i] = profile.tp_weight * scaled_sigmoid(-(right - i + 1) / width) / max_tp
            window_of[i] = k
            if i == right:
                previous = (right, width)
                current = pending.pop(0) if pending else None
        elif previous is None:
            weights[i] = before_any
        else:
            right, width = previous
            # a one-row window would divide by zero in NAB; treat it as two rows wide
            weights[i] = profile.fp_weight * scaled_sigmoid(abs(i - right) / max(width - 1, 1))
    probation = probationary_length(rows)
    weights[:probation] = np.nan
    window_of[:probation] = NO_WINDOW
    return weights, window_of


def normalise(raw: float, windows: int, profile: Profile) -> float:
    """100 for the perfect detector, 0 for the null detector."""
    null = -profile.fn_weight * windows
    perfect = profile.tp_weight * windows
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(files: Sequence[ScoredFile], profile: Profile) -> ProfileResult:
    """Optimise one threshold over all files and score the corpus with it."""
    pooled = _pool(files, profile)
    threshold, raw = _best_threshold(pooled, profile)
    return _score_at(files, pooled, profile, threshold, raw)


def score_all_profiles(files: Sequence[ScoredFile]) -> dict[str, ProfileResult]:
    """``score_corpus`` for each of NAB's three profiles."""
    return {name: score_corpus(files, profile) for name, profile in PROFILES.items()}


@dataclass(frozen=True, slots=True)
class _Pooled:
    scores: FloatArray  # every scored (non-probationary) row of the corpus
    weights: FloatArray
    window: IntArray  # corpus-wide window index, NO_WINDOW outside
    file_index: IntArray
    windows: int  # number of windows in the corpus


def score_at(files: Sequence[ScoredFile], profile: Profile, threshold: float) -> float:
    """The raw (not normalised) score of ``files`` at a threshold fixed beforehand."""
    pooled = _pool(files, profile)
    detected = pooled.scores >= threshold
    outside = pooled.window == NO_WINDOW
    best = np.full(pooled.windows, -profile.fn_weight)
    hits = detected & ~outside
    np.maximum.at(best, pooled.window[hits], pooled.weights[hits])
    return float(best.sum() + pooled.weights[detected & outside].sum())


def best_threshold(files: Sequence[ScoredFile], profile: Profile) -> tuple[float, float]:
    """The corpus-wide threshold NAB's optimiser picks for ``files`` and its raw score."""
    return _best_threshold(_pool(files, profile), profile)


# row weights depend only on a file's length and windows: computed once per profile
_row_weights = lru_cache(maxsize=1024)(row_weights)


def _pool(files: Sequence[ScoredFile], profile: Profile) -> _Pooled:
    scores, weights, window, file_index = [], [], [], []
    offset = 0
    for f_idx, f in enumerate(files):
        if not np.all(np.isfinite(f.scores)):
            raise ValueError(f"{f.name}: anomaly scores must be finite")
        w, win = _row_weights(len(f.scores), f.windows, profile)
        keep = ~np.isnan(w)
        scores.append(f.scores[keep])
        weights.append(w[keep])
        window.append(np.where(win[keep] == NO_WINDOW, NO_WINDOW, win[keep] + offset))
        file_index.append(np.full(int(keep.sum()), f_idx, dtype=np.int64))
        offset += len(f.windows)
    return _Pooled(
        np.concatenate(scores) if scores else np.empty(0),
        np.concatenate(weights) if weights else np.empty(0),
        np.concatenate(window) if window else np.empty(0, dtype=np.int64),
        np.concatenate(file_index) if file_index else np.empty(0, dtype=np.int64),
        offset,
    )


def _best_threshold(pooled: _Pooled, profile: Profile) -> tuple[float, float]:
    """Sweep thresholds from high to low; return (threshold, raw score) of the best one."""
    start = -profile.fn_weight * pooled.windows
    if len(pooled.scores) == 0:
        return START_THRESHOLD, start
    order = np.argsort(-pooled.scores, kind="stable")
    scores, weights, window = pooled.scores[order], pooled.weights[order], pooled.window[order]
    # How much the corpus score changes when each row, in that order, becomes a detection:
    # a false positive adds its weight; a window row raises its window from -fn (or from its
    # best detection so far) to the best weight detected in it so far.
    delta = np.where(window == NO_WINDOW, weights, 0.0)
    in_window = np.flatnonzero(window != NO_WINDOW)
    if len(in_window):
        by_window = in_window[np.argsort(window[in_window], kind="stable")]
        ids = window[by_window]
        # window weights lie in (0, tp]; an offset per window keeps the running max per window
        span = profile.tp_weight + profile.fn_weight + 1.0
        running = np.maximum.accumulate(weights[by_window] + span * ids) - span * ids
        first = np.ones(len(ids), dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        before = np.where(first, -profile.fn_weight, np.roll(running, 1))
        delta[by_window] = running - before
    totals = start + np.cumsum(delta)
    # a threshold detects every row with a score >= it: evaluate at the end of each tie group
    last_of_group = np.ones(len(scores), dtype=bool)
    last_of_group[:-1] = scores[:-1] != scores[1:]
    candidates = np.flatnonzero(last_of_group)
    best = candidates[int(np.argmax(totals[candidates]))]  # argmax: first, so highest t
    if totals[best] > start:
        return float(scores[best]), float(totals[best])
    return START_THRESHOLD, start


def _score_at(
    files: Sequence[ScoredFile], pooled: _Pooled, profile: Profile, threshold: float, raw: float
) -> ProfileResult:
    detected = pooled.scores >= threshold
    outside = pooled.window == NO_WINDOW
    per_file = {f.name: 0.0 for f in files}
    names = [f.name for f in files]
    window_file = np.repeat(np.arange(len(files)), [len(f.windows) for f in files])
    best = np.full(pooled.windows, -profile.fn_weight)
    hits = detected & ~outside
    np.maximum.at(best, pooled.window[hits], pooled.weights[hits])
    for k, value in enumerate(best):
        per_file[names[window_file[k]]] += float(value)
    false_alarms = detected & outside
    for f_idx, weight in zip(
        pooled.file_index[false_alarms], pooled.weights[false_alarms], strict=True
    ):
        per_file[names[f_idx]] += float(weight)
    return ProfileResult(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        normalised=normalise(raw, pooled.windows, profile),
        tp=int(hits.sum()),
        fp=int(false_alarms.sum()),
        fn=int((~detected & ~outside).sum()),
        tn=int((~detected & outside).sum()),
        per_file=per_file,
    )


def windows_to_rows(
    timestamps: Sequence[str], windows: Sequence[Sequence[str]]
) -> tuple[tuple[int, int], ...]:
    """Map NAB window timestamps (``YYYY-mm-dd HH:MM:SS.ffffff``) to inclusive row ranges."""
    index = {ts: i for i, ts in enumerate(timestamps)}
    rows = []
    for start, end in windows:
        try:
            rows.append((index[_plain(start)], index[_plain(end)]))
        except KeyError as exc:
            raise ValueError(f"window edge {exc.args[0]!r} is not a timestamp of the file") from exc
    return tuple(rows)


def _plain(timestamp: str) -> str:
    return timestamp[: -len(".000000")] if timestamp.endswith(".000000") else timestamp
