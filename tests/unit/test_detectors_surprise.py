"""The surprise detector and its parts: moments, band score, calibration, context, onset gate."""

from __future__ import annotations

import json
import math
import random

import pytest

from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.calibration import RankCalibrator
from sentio_iot.streams.detectors.context import ContextMemory
from sentio_iot.streams.detectors.moments import EwMoments, band_score
from sentio_iot.streams.detectors.onset import OnsetGate
from sentio_iot.streams.detectors.registry import create_detector, restore_detector
from sentio_iot.streams.detectors.surprise import SurpriseDetector, SurpriseParams

HOUR_US = 3_600_000_000
STEP_US = 300_000_000  # five minutes, like most NAB series


def noisy(seed: int, n: int, level: float = 20.0, sigma: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, sigma) for _ in range(n)]


def feed(detector: SurpriseDetector, values: list[float], start: int = 0) -> list[Score]:
    return [detector.update((start + i) * STEP_US, v) for i, v in enumerate(values)]


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
    assert scores[1000].score > 0.75  # z about 12 -> 144 / (144 + 36) = 0.8
    normal = [s.score for i, s in enumerate(scores) if s.warm and i != 1000]
    assert len(normal) == 2000 - 50 - 1
    assert max(normal) < 0.5  # normal noise stays inside the band (z < 6)
    assert sum(s < 0.2 for s in normal) / len(normal) > 0.99


def test_level_shift_is_reported_once_at_its_onset() -> None:
    values = noisy(7, 600, level=0.0) + noisy(8, 600, level=15.0)
    scores = feed(SurpriseDetector(), values)
    assert scores[600].score > 0.8
    # the gate silences the rest of the episode: nothing else reaches 0.5 in 150 readings
    assert max(s.score for s in scores[601:751]) < 0.5
    assert max(s.score for s in scores[100:600]) < 0.5


def test_daily_feature_flags_a_reading_unusual_for_its_hour() -> None:
    # one reading per hour; hour 3 of each day is always 10, other hours 0 (with noise)
    rng = random.Random(5)
    days = 30
    values = [(10.0 if h == 3 else 0.0) + rng.gauss(0, 0.5) for _ in range(days) for h in range(24)]
    values[25 * 24 + 3] = 0.0  # the hour-3 peak of day 25 is missing
    detector = SurpriseDetector(SurpriseParams(features=("daily",), warmup=48))
    scores = [detector.update(i * HOUR_US, v) for i, v in enumerate(values)]
    assert scores[25 * 24 + 3].score > 0.8  # z about 20, a first-ever surprise here
    assert max(s.score for i, s in enumerate(scores[24 * 5 :], 24 * 5) if i != 25 * 24 + 3) < 0.5


def test_log_values_scores_on_the_log_scale() -> None:
    rng = random.Random(9)
    values = [float(rng.randint(90, 110)) for _ in range(400)]
    values[300] = 1000.0  # ten times the usual count
    scores = feed(SurpriseDetector(SurpriseParams(log_values=True)), values)
    assert scores[299].expected == pytest.approx(math.log(101.0), abs=0.05)
    assert scores[300].score > 0.75
    assert max(s.score for s in scores[60:300]) < 0.5
