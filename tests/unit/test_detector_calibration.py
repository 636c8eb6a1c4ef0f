"""Calibration of detector scores: tail probabilities per series and the calibrated detector."""

from __future__ import annotations

import json
import math

import pytest
from detector_series import feed, noisy

from sentio_iot.errors import ConfigError
from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.streams.anomaly import AnomalyScorer
from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.calibrated import (
    CalibratedDetector,
    CalibratedParams,
    transform,
)
from sentio_iot.streams.detectors.calibration import (
    LikelihoodCalibrator,
    TailCalibrator,
    tail_score,
)
from sentio_iot.streams.detectors.registry import create_detector, restore_detector

# the surprise detector's odds, calibrated without a floor (a tail of 1e-5 scores 0.5)
SURPRISE = {
    "base": "surprise",
    "warmup": 20,
    "transform": "odds",
    "floor": 0.0,
    "half_life": 5000.0,
    "fire": 0.2,
    "quiet": 80,
}


def test_tail_score_counts_decimal_digits_of_rarity() -> None:
    assert tail_score(1e-5, 10.0) == pytest.approx(0.5)
    assert tail_score(1e-2, 4.0) == pytest.approx(0.5)
    assert tail_score(1.0, 10.0) == 0.0
    assert tail_score(1e-20, 10.0) == 1.0  # clipped
    assert tail_score(0.0, 10.0) == 1.0  # no log of zero


def test_transform_of_a_base_score() -> None:
    assert transform(0.5, "score") == 0.5
    assert transform(0.8, "odds") == pytest.approx(4.0)
    assert transform(0.8, "log_odds") == pytest.approx(math.log(4.0))
    assert transform(1.0, "odds") == 1e12  # a saturated score stays finite
    assert transform(0.0, "log_odds") == pytest.approx(math.log(1e-12))


def test_tail_calibrator_fits_an_exponential_tail_above_mean_plus_std() -> None:
    calibrator = TailCalibrator(0.5)
    calibrator.add(1.0)  # nothing seen before: not above anything, the rate stays 0
    assert (calibrator.rate, calibrator.scale) == (0.0, 0.0)
    assert calibrator.tail(5.0) == 1.0  # no excess seen yet: nothing is rare
    # 3.0 against the level of {1.0} (mean 1, std 0): an excess of 2; the rate's normalised
    # EW weight is 1 / (0.5 * 1 + 1), so it moves from 0 to 2/3
    calibrator.add(3.0)
    assert calibrator.rate == pytest.approx(2 / 3)
    assert calibrator.scale == 2.0 and calibrator.excess_weight == 1.0
    # moments of {1 (weight 0.5), 3 (weight 1)}: mean 7/3, var 8/9
    level = 7 / 3 + math.sqrt(8 / 9)
    assert calibrator.level == pytest.approx(level)
    assert calibrator.tail(5.0) == pytest.approx(2 / 3 * math.exp(-(5.0 - level) / 2.0))
    assert calibrator.tail(3.0) == 1.0  # below the level
    restored = TailCalibrator.from_list(0.5, calibrator.to_list())
    assert restored.to_list() == calibrator.to_list() and len(calibrator.to_list()) == 7


def test_likelihood_calibrator_is_htms_gaussian_tail_of_a_short_mean() -> None:
    calibrator = LikelihoodCalibrator(0.5, 0.5)
    assert calibrator.tail(9.0) == 1.0  # no spread yet
    calibrator.add(1.0)  # the short mean starts at the first value
    calibrator.add(3.0)  # short mean 1 + 0.5 * (3 - 1) = 2
    assert calibrator.short == 2.0
    # moments of the short means {1 (weight 0.5), 2 (weight 1)}: mean 5/3, var 2/9;
    # with 5.0 the short mean would be 2 + 0.5 * 3 = 3.5
    z = (3.5 - 5 / 3) / math.sqrt(2 / 9)
    assert calibrator.tail(5.0) == pytest.approx(0.5 * math.erfc(z / math.sqrt(2.0)))
    assert (
        calibrator.to_list()
        == LikelihoodCalibrator.from_list(0.5, 0.5, calibrator.to_list()).to_list()
    )


def test_calibrated_detector_learns_for_exactly_warmup_warm_base_scores() -> None:
    detector = create_detector("calibrated", SURPRISE)
    scores = feed(detector, noisy(1, 80))
    # surprise warms up in 50 readings, then 20 base scores only teach the calibration
    assert all(s == Score(0.0) for s in scores[:70])
    assert scores[70].warm and scores[70].expected is not None


def test_a_spike_is_rare_in_any_series_and_noise_is_not() -> None:
    runs = []
    for sigma in (0.01, 1.0, 100.0):  # the same shape on three scales: the same scores
        values = noisy(7, 3000, level=20.0 * sigma, sigma=sigma)
        values[2500] += 8.0 * sigma
        runs.append([s.score for s in feed(create_detector("calibrated", SURPRISE), values)])
    for scores in runs:
        assert scores == pytest.approx(runs[1], abs=1e-6)
    scores = runs[1]
    assert scores[2500] == 1.0  # rarer than 1e-10 in this series
    # the rarest noise reading of 3,000 scores 0.547: a tail of 10^-5.47
    assert sorted(scores)[-2] == pytest.approx(0.547, abs=1e-3)


def test_state_round_trip_continues_identically_and_is_small() -> None:
    values = noisy(3, 1500)
    values[1200] += 15.0
    for params in ({}, SURPRISE, {**SURPRISE, "method": "likelihood"}, {"method": "rank"}):
        original = create_detector("calibrated", params)
        feed(original, values[:700])
        restored = restore_detector(json.loads(json.dumps(original.to_state())))
        assert isinstance(restored, CalibratedDetector)
        expected = feed(original, values[700:], start=700)
        assert feed(restored, values[700:], start=700) == expected
        assert expected[500].score == max(s.score for s in expected) > 0.3  # the spike
    tail = create_detector("calibrated", SURPRISE)
    feed(tail, values)
    memory = json.dumps(tail.memory(), separators=(",", ":"))
    base = json.dumps(tail._base.memory(), separators=(",", ":"))  # type: ignore[attr-defined]
    assert len(tail.memory()["calibration"]) == 7
    assert len(memory) - len(base) < 400  # what calibration adds per series, in JSON bytes


def test_bad_params_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"base_params\.vigilance"):
        CalibratedParams.model_validate({"base_params": {"vigilance": []}})
    with pytest.raises(ValueError, match=r"unknown detector 'nope'; installed detectors: "):
        CalibratedParams.model_validate({"base": "nope"})
    with pytest.raises(ConfigError) as info:
        create_detector("calibrated", {"method": "guess"}, path="streams.anomaly.params")
    assert "streams.anomaly.params.method" in str(info.value) + str(info.value.__dict__)


def test_the_scorer_keeps_calibrated_state_per_device() -> None:
    assert AnomalyScorer(AnomalySettings(detector="calibrated")).threshold == 0.203
    scorer = AnomalyScorer(AnomalySettings(detector="calibrated", params=SURPRISE, threshold=0.5))
    series = scorer.new_series()
    values = noisy(4, 600)
    values[500] += 12.0
    found = [
        scorer.observe(series, "pump-1", "temp", i * 300_000_000, v, {})
        for i, v in enumerate(values)
    ]
    hits = [i for i, a in enumerate(found) if a is not None]
    assert hits == [500]
    restored = scorer.restore_device(json.loads(json.dumps(scorer.dump_device({"temp": series}))))
    assert restored["temp"].detector.memory() == series.detector.memory()
