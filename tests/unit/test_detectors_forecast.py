"""The neural forecast detector (TensorFlow): warm-up, determinism, what it learns."""

from __future__ import annotations

import json
import math
import random

import pytest
from detector_series import feed

from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.forecast import ForecastDetector, ForecastParams
from sentio_iot.streams.detectors.registry import create_detector, restore_detector

SMALL = {"history": 400, "warmup": 100, "retrain_every": 150, "steps": 60, "lags": 8}


def wave(seed: int, n: int, noise: float = 0.05) -> list[float]:
    """A sine of period 24 readings with a little noise."""
    rng = random.Random(seed)
    return [math.sin(2 * math.pi * i / 24) + rng.gauss(0.0, noise) for i in range(n)]


def test_cold_until_the_first_training_after_warmup_readings() -> None:
    detector = ForecastDetector(ForecastParams.model_validate(SMALL))
    scores = feed(detector, wave(1, 102))
    assert all(s == Score(0.0) for s in scores[:100])  # trains after the 100th reading
    assert scores[100].warm is True
    assert scores[100].expected is not None


def test_state_round_trip_continues_identically_across_retrainings() -> None:
    values = wave(2, 700)
    values[600] += 3.0
    original = create_detector("forecast", SMALL)
    feed(original, values[:260])
    restored = restore_detector(json.loads(json.dumps(original.to_state())))
    assert isinstance(restored, ForecastDetector)
    # retrains at 400 and 550 (every 150 readings after the one at 100, then 250)
    expected = feed(original, values[260:], start=260)
    assert feed(restored, values[260:], start=260) == expected


def test_learns_the_wave_and_scores_a_spike_high_and_noise_low() -> None:
    values = wave(3, 900)
    values[800] += 2.0
    scores = feed(create_detector("forecast", SMALL), values)  # type: ignore[arg-type]
    late = scores[500:800]
    # forecasts follow the wave closely (amplitude 1, noise 0.05)
    errors = [abs(s.expected - v) for s, v in zip(late, values[500:800], strict=True) if s.expected]
    assert sum(errors) / len(errors) < 0.15
    assert scores[800].score > 0.75
    assert max(s.score for s in late) < 0.5


def test_level_shift_scores_high() -> None:
    values = wave(4, 600)
    values[450:] = [v + 3.0 for v in values[450:]]
    scores = feed(create_detector("forecast", SMALL), values)  # type: ignore[arg-type]
    assert scores[450].score > 0.75


def test_restored_weights_must_fit_the_params() -> None:
    detector = ForecastDetector(ForecastParams.model_validate(SMALL))
    feed(detector, wave(5, 120))
    state = detector.to_state()
    state["params"]["hidden"] = 4
    with pytest.raises(Exception, match="weights of shapes"):
        restore_detector(state)
