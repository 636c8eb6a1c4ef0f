"""The novelty detector as the stream ships it: its plain-Python memory, its first day, its threshold."""

from __future__ import annotations

import json
import random

import pytest
from detector_series import feed, noisy

from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.novelty import (
    CategoryMemory,
    NoveltyDetector,
    NoveltyParams,
    ScalarMemory,
    new_memory,
)
from sentio_iot.streams.detectors.registry import restore_detector

DAY = 288  # readings of five minutes


def test_scalar_memory_is_the_category_memory_without_numpy() -> None:
    rng = random.Random(11)
    # levels that come and go, a drift, ties (integers) and more bands than the capacity
    values = [float(rng.choice([0, 1, 2, 5, 9])) + rng.gauss(0.0, 0.2) for _ in range(1500)]
    values += [i / 50 for i in range(500)] + [float(rng.randint(0, 40)) for _ in range(500)]
    for vigilance, capacity in ((0.05, 200), (0.02, 7), (0.3, 3)):
        fast = ScalarMemory(vigilance, 0.05, capacity)
        slow = CategoryMemory(1, 1, vigilance, "max", 0.05, capacity)
        low, high = 0.0, 1e-9
        for value in values:
            scale = max(high - low, 1e-9)
            assert fast.learn(value, scale) == slow.learn(value, scale)
            low, high = min(low, value), max(high, value)
        # the same state, the one-point windows written flat ([v] instead of [[v]])
        slow_state = slow.to_dict()
        assert fast.to_dict() == {**slow_state, "protos": [w[0] for w in slow_state["protos"]]}
        restored = ScalarMemory(vigilance, 0.05, capacity)  # reads the nested form too
        restored.restore(json.loads(json.dumps(slow.to_dict())))
        assert [restored.learn(v, 40.0) for v in values[:300]] == [
            slow.learn(v, 40.0) for v in values[:300]
        ]
    assert isinstance(new_memory(1, 1, 0.05, "max", 0.05, 10), ScalarMemory)
    assert isinstance(new_memory(2, 1, 0.05, "max", 0.05, 10), CategoryMemory)


def test_on_its_first_day_novelty_reports_the_weighted_surprise() -> None:
    values = noisy(1, 400)
    values[100] += 50.0  # on the first day: the surprise part sees it
    values[350] += 50.0  # the same band on day 2: known to the memories, still a surprise
    values[380] -= 50.0  # a new band on day 2
    scores = feed(NoveltyDetector(), values)
    assert all(s == Score(0.0) for s in scores[:50])  # the surprise detector's warm-up
    assert scores[50].warm and scores[50].expected is not None
    assert scores[100].score == pytest.approx(0.25, abs=0.01)  # 0.25 x a surprise near 1
    threshold = NoveltyDetector.alert_threshold
    assert threshold == 0.202
    alerts = [i for i, s in enumerate(scores) if s.score >= threshold]
    # at 0.2 a surprise of 0.8 or more alerts (0.25 x 0.8), known band or not: day 2's
    # repeated spike too; the new band scores far higher
    assert alerts == [100, 350, 380]
    assert scores[350].score < 0.26 < 0.9 < scores[380].score
    silent = feed(NoveltyDetector(NoveltyParams(surprise_while_learning=False)), values)
    assert all(s == Score(0.0) for s in silent[:DAY])


def test_version_2_state_round_trip() -> None:
    values = noisy(3, 900)
    values[700] += 15.0
    original = NoveltyDetector()
    feed(original, values[:500])
    state = json.loads(json.dumps(original.to_state()))
    assert state["version"] == 2
    restored = restore_detector(state)
    assert feed(restored, values[500:], start=500) == feed(original, values[500:], start=500)
