"""The surprise detector and its parts: moments, band score, calibration, context, onset gate."""

from __future__ import annotations

import json
import math
import random

import pytest
from detector_series import STEP_US, feed, noisy

from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.calibration import RankCalibrator
from sentio_iot.streams.detectors.context import ContextMemory
from sentio_iot.streams.detectors.moments import EwMoments, band_score
from sentio_iot.streams.detectors.onset import OnsetGate
from sentio_iot.streams.detectors.registry import create_detector, restore_detector
from sentio_iot.streams.detectors.surprise import (
    SurpriseDetector,
    SurpriseParams,
    gaussian_moment,
)

HOUR_US = 3_600_000_000
ALERT = 0.8  # the alert threshold docs/ml-anomaly.md gives for surprise


def test_band_score_is_half_on_the_band_edge_and_never_saturates() -> None:
    assert band_score(0.0, 6.0) == 0.0
    assert band_score(6.0, 6.0) == 0.5
    assert band_score(12.0, 6.0) == 0.8  # 144 / 180
    assert band_score(1e6, 6.0) < band_score(1e7, 6.0) < 1.0


def test_ew_moments_are_normalised_weighted_mean_and_variance() -> None:
    moments = EwMoments(0.5)
    for value in (1.0, 3.0):
        moments.add(value)
    # weights 0.5 (for 1) and 1 (for 3): mean 3.5 / 1.5 = 7/3,
    # var (0.5 * (4/3)^2 + (2/3)^2) / 1.5 = 8/9
    assert moments.mean == pytest.approx(7 / 3)
    assert moments.var == pytest.approx(8 / 9)
    assert moments.z(5.0, 1e-9) == pytest.approx(2 * math.sqrt(2))  # (8/3) / sqrt(8/9)
    assert EwMoments(0.5).z(1.0, 0.25) == 4.0  # floored deviation


def test_rank_calibrator_tail_counts_values_at_least_as_large() -> None:
    calibrator = RankCalibrator(4)
    for raw in (1.0, 2.0, 3.0, 4.0, 5.0):  # keeps the last four: 2, 3, 4, 5
        calibrator.add(raw)
    assert len(calibrator) == 4
    assert calibrator.tail(3.0) == 4 / 5  # 3, 4, 5 are >= 3: (3 + 1) / (4 + 1)
    assert calibrator.tail(0.0) == 1.0
    assert calibrator.tail(10.0) == pytest.approx(1 / 5 * 5 / 10)  # a record, twice the max
    assert calibrator.to_list() == [2.0, 3.0, 4.0, 5.0]
    # weigh: 0.5 x (1 - tail(4))^2 with tail (2 + 1) / 5, then 4 joins (2 drops out)
    assert calibrator.weigh(0.5, 4.0, 2.0) == pytest.approx(0.5 * (1 - 3 / 5) ** 2)
    assert calibrator.to_list() == [3.0, 4.0, 5.0, 4.0]
    assert calibrator.weigh(0.5, 9.0, 0.0) == 0.5 and len(calibrator.to_list()) == 4  # power 0: off
    assert calibrator.to_list() == [3.0, 4.0, 5.0, 4.0]


def test_context_memory_answers_one_for_new_patterns_and_less_for_known_ones() -> None:
    memory = ContextMemory(length=2, bins=2, capacity=100)
    memory.start([0.0, 1.0])  # bins of width 0.5 from 0
    novelties = [memory.novelty(v) for v in (0.1, 0.9, 0.1, 0.9, 0.1, 3.0)]
    # contexts: -, (0,1), (1,0), (0,1) seen once, (1,0) seen once, (0,6) new
    assert novelties == [0.0, 1.0, 1.0, 0.5, 0.5, 1.0]


def test_onset_gate_reports_once_per_episode_for_any_threshold() -> None:
    gate = OnsetGate(floor=0.2, quiet=3, damp=0.0)
    scores = [gate.gate(s) for s in (0.1, 0.6, 0.5, 0.7, 0.6, 0.6, 0.6, 0.6, 0.1, 0.3)]
    # 0.1 below the floor passes without silencing; 0.6 passes and silences <= 0.6 for 3
    # readings; 0.7 is higher: passes and silences again; 3 readings later the level drops
    assert scores == [0.1, 0.6, 0.0, 0.7, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0]
    restored = OnsetGate.from_list(0.2, 3, 0.0, gate.to_list())
    assert [restored.gate(0.5), gate.gate(0.5)] == [0.0, 0.0]
    assert OnsetGate(0.2, 0, 0.0).gate(0.9) == 0.9  # quiet 0: no gating


def test_warmup_scores_cold_for_exactly_warmup_readings() -> None:
    scores = feed(SurpriseDetector(SurpriseParams(warmup=10)), noisy(1, 12))
    assert all(s == Score(0.0) for s in scores[:10])
    assert scores[10].warm is True
    assert scores[10].expected is not None


def test_gaps_change_nothing() -> None:
    detector = SurpriseDetector()
    values = noisy(2, 200)
    with_gaps = SurpriseDetector()
    plain = feed(detector, values)
    gapped = []
    for i, v in enumerate(values):
        with_gaps.update(i * STEP_US, math.nan)
        gapped.append(with_gaps.update(i * STEP_US, v))
    assert gapped == plain


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"calibrate": True, "features": ["level", "step", "drift", "context", "daily"]},
        {"log_values": True, "features": ["level", "step"]},
    ],
)
def test_state_round_trip_continues_identically(params: dict[str, object]) -> None:
    values = noisy(3, 1500)
    values[900] += 8.0
    original = create_detector("surprise", params)
    feed(original, values[:700])
    restored = restore_detector(json.loads(json.dumps(original.to_state())))
    assert isinstance(restored, SurpriseDetector)
    expected = feed(original, values[700:], start=700)
    assert feed(restored, values[700:], start=700) == expected
    assert max(s.score for s in expected) > 0.5


def test_spike_scores_high_and_normal_noise_low() -> None:
    values = noisy(42, 2000)
    values[1000] += 12.0
    scores = feed(SurpriseDetector(), values)
    # noise's z-scores are typically 1.24 (the Gaussian prior, then learnt): z about 12 is
    # x about 9.6 typical sizes -> 9.6^2 / (9.6^2 + 2^2) = 0.96
    assert scores[1000].score > 0.9
    normal = [s.score for i, s in enumerate(scores) if s.warm and i != 1000]
    assert len(normal) == 2000 - 50 - 1
    assert max(normal) < ALERT  # noise never reaches the alert threshold
    assert sum(s < 0.5 for s in normal) / len(normal) > 0.99


def test_level_shift_is_reported_once_at_its_onset() -> None:
    values = noisy(7, 600, level=0.0) + noisy(8, 600, level=15.0)
    scores = feed(SurpriseDetector(), values)
    assert scores[600].score > 0.95
    # the gate silences the rest of the episode: nothing else reaches the alert threshold in
    # the quiet period (125 readings)
    assert max(s.score for s in scores[601:726]) < ALERT
    # before it: noise, scored far lower; the daily slots' first rough z-scores (usable
    # from the end of day 1, reading 288) are the highest of it, still below the onset
    assert max(s.score for s in scores[:600]) < scores[600].score - 0.15
    assert max(s.score for s in scores[300:600]) < ALERT


def test_daily_feature_flags_a_reading_unusual_for_its_hour() -> None:
    # one reading per hour; hour 3 of each day is always 10, other hours 0 (with noise)
    rng = random.Random(5)
    days = 30
    values = [(10.0 if h == 3 else 0.0) + rng.gauss(0, 0.5) for _ in range(days) for h in range(24)]
    values[25 * 24 + 3] = 0.0  # the hour-3 peak of day 25 is missing
    detector = SurpriseDetector(SurpriseParams(features=("daily",), warmup=48))
    scores = [detector.update(i * HOUR_US, v) for i, v in enumerate(values)]
    missing = 25 * 24 + 3
    assert scores[missing].score > 0.95  # z about 20
    # the slots become usable on day 10 (daily_min_count 10): their first z-scores, from
    # ten readings each, are rough, and the typical size is still the prior's; from day 12
    # on nothing but the missing peak reaches the alert threshold
    assert max(s.score for i, s in enumerate(scores) if i != missing) < scores[missing].score
    assert max(s.score for i, s in enumerate(scores[24 * 12 :], 24 * 12) if i != missing) < ALERT


def test_log_values_scores_on_the_log_scale() -> None:
    rng = random.Random(9)
    values = [float(rng.randint(90, 110)) for _ in range(400)]
    values[300] = 1000.0  # ten times the usual count
    scores = feed(SurpriseDetector(SurpriseParams(log_values=True)), values)
    assert scores[299].expected == pytest.approx(math.log(101.0), abs=0.05)
    assert scores[300].score > 0.9
    assert max(s.score for s in scores[60:300]) < ALERT


def test_gaussian_moment_is_the_mean_power_of_standard_normal_z() -> None:
    assert gaussian_moment(2.0) == pytest.approx(1.0)  # the variance
    assert gaussian_moment(4.0) == pytest.approx(3.0)  # the kurtosis
    rng = random.Random(11)
    sample = [abs(rng.gauss(0.0, 1.0)) ** 3.5 for _ in range(200_000)]
    assert sum(sample) / len(sample) == pytest.approx(gaussian_moment(3.5), rel=0.02)


def test_a_series_that_is_often_surprised_is_scored_against_its_own_habit() -> None:
    # the same jump (+8) is routine in a series with a jump every 40 readings, and new in a
    # calm one: scaled by each series' typical z, only the calm one alerts
    calm = noisy(12, 3000)
    spiky = noisy(12, 3000)
    for i in range(100, 3000, 40):
        spiky[i] += 8.0
    calm[2900] += 8.0
    assert spiky[2900] == calm[2900]  # 2900 = 100 + 70 * 40: one of the spiky series' jumps
    scaled = SurpriseParams(quiet=0)  # no onset gate: the raw scores
    calm_score, spiky_score = (feed(SurpriseDetector(scaled), v)[2900].score for v in (calm, spiky))
    assert calm_score > ALERT
    assert spiky_score < 0.7
    # without scaling both see about the same z (0.59 and 0.46)
    plain = SurpriseParams(quiet=0, scale_power=0.0, threshold=6.0)
    unscaled = [feed(SurpriseDetector(plain), v)[2900].score for v in (calm, spiky)]
    assert abs(unscaled[0] - unscaled[1]) < 0.2
