"""The NAB scorer on hand-made cases whose scores are worked out by hand in the comments."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.nab.scoring import (  # noqa: E402
    PROFILES,
    START_THRESHOLD,
    ScoredFile,
    normalise,
    probationary_length,
    row_weights,
    scaled_sigmoid,
    score_all_profiles,
    score_corpus,
    windows_to_rows,
)

STANDARD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP_rate"]
LOW_FN = PROFILES["reward_low_FN_rate"]
WINDOW = ((10, 13),)  # width 4, in a 20-row file whose probation is floor(0.15 * 20) = 3 rows


def file_with(detections: dict[int, float], rows: int = 20, name: str = "a/f.csv") -> ScoredFile:
    scores = np.zeros(rows)
    for row, score in detections.items():
        scores[row] = score
    return ScoredFile(name, scores, WINDOW)


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probationary_length(20) == 3
    assert probationary_length(19) == 2  # floor(2.85)
    assert probationary_length(1000) == 150
    assert probationary_length(5000) == 750
    assert probationary_length(22_000) == 750


def test_scaled_sigmoid_values() -> None:
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)  # 2/(1+e^-5) - 1
    assert scaled_sigmoid(3.0) == pytest.approx(2 / (1 + math.exp(15)) - 1)
    assert scaled_sigmoid(3.0001) == -1.0


def test_row_weights_inside_before_and_after_a_window() -> None:
    weights, window_of = row_weights(20, WINDOW, STANDARD)
    assert np.isnan(weights[:3]).all() and (window_of[:3] == -1).all()  # probation
    assert weights[3:10].tolist() == [-0.11] * 7  # before any window
    assert weights[10] == pytest.approx(1.0)  # left edge: exactly tpWeight
    # row 12: y = -(13 - 12 + 1) / 4 = -0.5; (2/(1+e^-2.5) - 1) / 0.986614 = 0.859793
    assert weights[12] == pytest.approx(0.859793, abs=1e-6)
    # right edge: y = -1/4: (2/(1+e^-1.25) - 1) / 0.986614 = 0.554599 / 0.986614 = 0.562124
    assert weights[13] == pytest.approx(0.562124, abs=1e-6)
    assert window_of[10:14].tolist() == [0, 0, 0, 0]
    # row 15: y = |15 - 13| / (4 - 1) = 2/3: 0.11 * (2/(1+e^(10/3)) - 1) = -0.102422
    assert weights[15] == pytest.approx(-0.102422, abs=1e-6)
    # rows from 3 widths after on (y > 3: 13 + 3*3 < i) cost the full fpWeight
    assert row_weights(40, WINDOW, STANDARD)[0][23] == -0.11


def test_earliest_detection_scores_100_and_a_late_one_less() -> None:
    assert score_corpus([file_with({10: 1.0})], STANDARD).normalised == pytest.approx(100.0)
    # raw 0.859793 (row 12, above); normalised 100 * (0.859793 + 1) / 2
    late = score_corpus([file_with({12: 1.0})], STANDARD)
    assert late.raw == pytest.approx(0.859793, abs=1e-6)
    assert late.normalised == pytest.approx(92.98965, abs=1e-4)


def test_only_the_earliest_detection_of_a_window_counts_and_later_ones_are_free() -> None:
    result = score_corpus([file_with({12: 0.9, 10: 0.7, 11: 0.8, 13: 0.6})], STANDARD)
    assert result.threshold == 0.7  # 0.6 adds a free detection: a tie, the higher t wins
    assert result.raw == pytest.approx(1.0)
    assert (result.tp, result.fp, result.fn, result.tn) == (3, 0, 1, 13)


def test_false_positive_before_the_window_costs_fp_weight_per_profile() -> None:
    # t=0.9 detects only the FP: -1 - fp < -1, worse than nothing; t=0.8 adds the window: 1 - fp
    scored = [file_with({5: 0.9, 10: 0.8})]
    results = score_all_profiles(scored)
    assert results["standard"].threshold == 0.8
    assert results["standard"].raw == pytest.approx(0.89)
    assert results["standard"].normalised == pytest.approx(94.5)  # 100 * 1.89 / 2
    assert results["reward_low_FP_rate"].normalised == pytest.approx(89.0)  # 100 * 1.78 / 2
    assert results["reward_low_FN_rate"].normalised == pytest.approx(96.3333, abs=1e-4)  # 2.89/3


def test_detections_in_the_probation_are_ignored() -> None:
    # 100 rows, probation 15: t=1.0 detects nothing that counts (raw -1, no better than
    # nothing); t=0 detects the 35 rows before the window too: 1 - 35 * 0.11 - ... < -1
    scores = np.zeros(100)
    scores[2] = 1.0
    result = score_corpus([ScoredFile("a/f.csv", scores, ((50, 53),))], STANDARD)
    assert (result.threshold, result.raw, result.normalised) == (START_THRESHOLD, -1.0, 0.0)
    assert (result.tp, result.fp, result.fn, result.tn) == (0, 0, 4, 81)  # rows 15..99


def test_null_detector_scores_zero() -> None:
    # constant 0.5 detects all 85 scored rows: 35 FPs before the window alone cost 3.85 > 2
    scores = np.full(100, 0.5)
    result = score_corpus([ScoredFile("a/f.csv", scores, ((50, 53),))], LOW_FN)
    assert (result.threshold, result.raw, result.normalised) == (START_THRESHOLD, -2.0, 0.0)


def test_one_threshold_for_the_whole_corpus_and_per_file_scores_sum_to_it() -> None:
    a = file_with({10: 0.6}, name="a/a.csv")
    b = file_with({5: 0.7, 10: 0.6}, name="a/b.csv")
    # t=0.7: -2 - 0.11; t=0.6: 1 + 1 - 0.11 = 1.89; normalised 100 * (1.89 + 2) / 4
    result = score_corpus([a, b], STANDARD)
    assert result.threshold == 0.6
    assert result.normalised == pytest.approx(97.25)
    assert result.per_file == pytest.approx({"a/a.csv": 1.0, "a/b.csv": 0.89})


def test_a_file_without_windows_only_loses_points() -> None:
    quiet = ScoredFile("a/quiet.csv", np.r_[np.zeros(19), 0.95], ())
    result = score_corpus([file_with({10: 0.9}), quiet], STANDARD)
    # t=0.95: -1 - 0.11; t=0.9: the window (1.0) and the quiet file's FP before any window
    assert result.threshold == 0.9
    assert result.per_file == {"a/f.csv": pytest.approx(1.0), "a/quiet.csv": -0.11}
    assert result.raw == pytest.approx(0.89)


def test_normalisation_of_numentas_published_raw_score() -> None:
    assert normalise(46.6345, 116, STANDARD) == pytest.approx(70.10, abs=0.01)


def test_window_timestamps_map_to_rows() -> None:
    stamps = ["2015-01-01 00:00:00", "2015-01-01 00:05:00", "2015-01-01 00:10:00"]
    rows = windows_to_rows(stamps, [["2015-01-01 00:05:00.000000", "2015-01-01 00:10:00.000000"]])
    assert rows == ((1, 2),)
    with pytest.raises(ValueError, match="00:07:00"):
        windows_to_rows(stamps, [["2015-01-01 00:07:00.000000", "2015-01-01 00:10:00.000000"]])


def brute_force(files: list[ScoredFile], threshold: float, profile_name: str) -> float:
    """S(t) straight from the definition, one file and one window at a time."""
    profile = PROFILES[profile_name]
    total = 0.0
    for f in files:
        weights, window_of = row_weights(len(f.scores), f.windows, profile)
        for k in range(len(f.windows)):
            hit = [
                w
                for w, s, win in zip(weights, f.scores, window_of, strict=True)
                if win == k and s >= threshold
            ]
            total += max(hit) if hit else -profile.fn_weight
        total += sum(
            w
            for w, s, win in zip(weights, f.scores, window_of, strict=True)
            if win == -1 and not np.isnan(w) and s >= threshold
        )
    return total


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
def test_sweep_finds_the_best_threshold_of_the_brute_force_search(profile_name: str) -> None:
    rng = np.random.default_rng(3)
    files = [
        ScoredFile(f"a/{n}.csv", np.round(rng.random(60), 1), ((20, 25), (40, 44)))
        for n in range(3)
    ] + [ScoredFile("a/none.csv", np.round(rng.random(60), 1), ())]
    result = score_corpus(files, PROFILES[profile_name])
    candidates = [
        START_THRESHOLD,
        *sorted({float(s) for f in files for s in f.scores}, reverse=True),
    ]
    nothing = -6 * PROFILES[profile_name].fn_weight  # six windows, none detected
    by_threshold = [
        (nothing if t == START_THRESHOLD else brute_force(files, t, profile_name), t)
        for t in candidates
    ]
    best = max(by_threshold, key=lambda pair: pair[0])  # first maximum: the highest t
    assert result.threshold == best[1]
    assert result.raw == pytest.approx(best[0])
    assert sum(result.per_file.values()) == pytest.approx(best[0])
