"""The detector interface, the robust z-score detector and the detector registry."""

from __future__ import annotations

import json
import math
from functools import partial

import detector_series
import pytest
from detector_series import noisy

from sentio_iot.errors import ConfigError
from sentio_iot.streams.detectors.base import Score, StateError
from sentio_iot.streams.detectors.registry import (
    create_detector,
    detector_class,
    detector_names,
    restore_detector,
)
from sentio_iot.streams.detectors.robust_zscore import (
    MAD_TO_SIGMA,
    RobustZScoreDetector,
    RobustZScoreParams,
)

feed = partial(detector_series.feed, step_us=1_000_000)  # a reading a second


def test_warmup_scores_zero_and_cold_for_exactly_warmup_readings() -> None:
    detector = RobustZScoreDetector(RobustZScoreParams(warmup=10))
    scores = feed(detector, noisy(1, 11))
    assert all(s == Score(0.0, None, None, None, warm=False) for s in scores[:10])
    assert scores[10].warm is True
    assert scores[10].expected is not None


def test_gaps_do_not_count_towards_warmup() -> None:
    detector = RobustZScoreDetector(RobustZScoreParams(warmup=3))
    scores = feed(detector, [1.0, math.nan, 2.0, math.inf, -math.inf, 3.0, 2.0])
    assert [s.warm for s in scores] == [False] * 6 + [True]


def test_band_starts_at_median_and_scaled_mad_of_warmup() -> None:
    detector = RobustZScoreDetector(RobustZScoreParams(warmup=5, threshold=4.0))
    score = feed(detector, [5.0, 1.0, 4.0, 2.0, 3.0, 3.0])[-1]
    assert score.expected == 3.0
    assert score.lower == pytest.approx(3.0 - 4.0 * MAD_TO_SIGMA)
    assert score.upper == pytest.approx(3.0 + 4.0 * MAD_TO_SIGMA)
    assert score.score == 0.0  # a perfect prediction scores exactly 0


def test_spike_in_stationary_noise_scores_high_and_normal_readings_low() -> None:
    values = noisy(42, 2000)
    values[1000] = 20.0 + 10.0  # ten standard deviations
    scores = feed(RobustZScoreDetector(), values)
    assert scores[1000].score > 0.9
    normal = [s.score for i, s in enumerate(scores) if s.warm and i != 1000]
    assert len(normal) == 2000 - 30 - 1
    assert sum(s < 0.5 for s in normal) / len(normal) >= 0.95
    # one spike barely moves the estimates: the next readings are normal again
    assert all(s.score < 0.5 for s in scores[1001:1010])


def test_level_shift_scores_high_then_adapts_within_shift_after_readings() -> None:
    params = RobustZScoreParams(shift_after=5)
    values = noisy(7, 300, level=0.0) + noisy(8, 300, level=15.0)
    scores = feed(RobustZScoreDetector(params), values)
    # documented: high up to and including the shift_after-th reading after the shift
    assert all(s.score > 0.9 for s in scores[300:305])
    assert all(s.score < 0.5 for s in scores[305:])
    # re-anchored on the mean of five noisy readings (this seed's is 16.15), then it settles
    assert scores[305].expected == pytest.approx(15.0, abs=3 / math.sqrt(5))
    assert scores[-1].expected == pytest.approx(15.0, abs=0.5)


def test_constant_series_then_change() -> None:
    detector = RobustZScoreDetector(RobustZScoreParams(warmup=10, shift_after=3))
    steady = feed(detector, [5.0] * 50)
    assert all(s.score == 0.0 for s in steady)
    assert steady[-1].expected == 5.0
    changed = feed(detector, [5.1] * 10, start=50)
    assert [s.score > 0.9 for s in changed[:3]] == [True] * 3
    assert [s.score for s in changed[3:]] == [0.0] * 7  # re-anchored on the new level
    assert changed[-1].expected == pytest.approx(5.1)


def test_gap_returns_last_score_and_changes_nothing() -> None:
    detector = RobustZScoreDetector(RobustZScoreParams(warmup=5))
    last = feed(detector, noisy(3, 20))[-1]
    before = detector.to_state()
    assert detector.update(21_000_000, math.nan) is last
    assert detector.to_state() == before
    assert RobustZScoreDetector().update(0, math.nan) == Score(0.0, warm=False)


@pytest.mark.parametrize("cut", [3, 40, 302], ids=["warming", "warm", "mid-shift"])
def test_state_round_trip_continues_identically(cut: int) -> None:
    values = noisy(11, 300, level=0.0) + noisy(12, 200, level=30.0)
    values[100] = 50.0
    values[150] = math.nan
    reference = feed(RobustZScoreDetector(), values)

    first = RobustZScoreDetector()
    feed(first, values[:cut])
    state = json.loads(json.dumps(first.to_state(), allow_nan=False))
    resumed = RobustZScoreDetector.from_state(state)
    assert feed(resumed, values[cut:], start=cut) == reference[cut:]


def test_state_keeps_params_and_refuses_other_versions() -> None:
    detector = RobustZScoreDetector(RobustZScoreParams(half_life=7.0, warmup=4))
    state = detector.to_state()
    assert RobustZScoreDetector.from_state(state).params == detector.params
    with pytest.raises(StateError, match="version 99"):
        RobustZScoreDetector.from_state({**state, "version": 99})
    with pytest.raises(StateError, match="damaged"):
        RobustZScoreDetector.from_state({**state, "state": {}})


def test_score_must_be_in_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Score(1.5)


def test_registry_lists_and_creates_detectors() -> None:
    assert "robust_zscore" in detector_names()
    assert detector_class("robust_zscore") is RobustZScoreDetector
    detector = create_detector("robust_zscore", {"half_life": 10, "warmup": 3})
    assert isinstance(detector, RobustZScoreDetector)
    assert detector.params == RobustZScoreParams(half_life=10.0, warmup=3)
    feed(detector, [1.0, 2.0, 3.0, 2.5])
    restored = restore_detector(detector.to_state())
    assert isinstance(restored, RobustZScoreDetector)
    assert restored.to_state() == detector.to_state()


def test_registry_unknown_name_lists_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        create_detector("isolation_forrest", {})
    assert str(info.value) == (
        "unknown detector 'isolation_forrest'; installed detectors: " + ", ".join(detector_names())
    )
    assert "robust_zscore" in str(info.value)


def test_registry_bad_params_name_each_field_path() -> None:
    with pytest.raises(ConfigError) as info:
        create_detector(
            "robust_zscore", {"half_life": 0, "halflife": 5}, path="anomaly.detector.params"
        )
    assert info.value.message == "invalid parameters for detector 'robust_zscore'"
    assert sorted(info.value.problems) == [
        "anomaly.detector.params.half_life: 0: input should be greater than 0",
        "anomaly.detector.params.halflife: unknown field (value 5); "
        "remove it or check its spelling",
    ]
