"""The novelty detector: its category memory, range scaling, warm-up, gaps and round trip."""

from __future__ import annotations

import json
import math
import random

import pytest
from detector_series import STEP_US, feed, noisy

from sentio_iot.errors import ConfigError
from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.novelty import CategoryMemory, NoveltyDetector, NoveltyParams
from sentio_iot.streams.detectors.registry import create_detector, restore_detector

ALERT = 0.25  # the stream's default threshold for novelty (settings)


def test_category_memory_resonates_learns_and_replaces_the_least_recently_used() -> None:
    memory = CategoryMemory(1, 1, vigilance=0.1, metric="max", learn_rate=0.05, capacity=2)
    assert memory.learn(0.0, scale=10.0) is None  # the first window founds a category
    # 0.5 away on a range of 10 with vigilance 0.1: d / (range x vigilance) = 0.5, resonates;
    # the category (used once) moves half way: max(learn_rate, 1 / uses) = 1/2
    assert memory.learn(0.5, scale=10.0) == pytest.approx(0.5)
    assert memory.to_dict()["protos"] == [[0.25]]
    assert memory.learn(5.0, scale=10.0) == pytest.approx(4.75)  # new: a second category
    assert memory.to_dict()["protos"] == [[0.25], [5.0]]
    # nearest is 5.0 (4 away); the memory is full: the least recently used (0.25) goes
    assert memory.learn(9.0, scale=10.0) == pytest.approx(4.0)
    assert memory.to_dict()["protos"] == [[9.0], [5.0]]


def test_windows_of_block_means() -> None:
    memory = CategoryMemory(2, 2, vigilance=0.5, metric="mean", learn_rate=0.05, capacity=10)
    # blocks of 2 readings, windows of 2 block means: (1, 3) after four readings
    assert [memory.learn(v, scale=1.0) for v in (0.0, 2.0, 3.0, 3.0)] == [None] * 4
    assert memory.to_dict()["protos"] == [[1.0, 3.0]]
    # next window (3, 5): mean difference (2 + 2) / 2 = 2 -> 2 / (1 x 0.5) = 4
    assert memory.learn(5.0, scale=1.0) is None
    assert memory.learn(5.0, scale=1.0) == pytest.approx(4.0)


def test_warmup_scores_cold_for_exactly_warmup_readings() -> None:
    scores = feed(NoveltyDetector(NoveltyParams(warmup=30, learn_s=0.0)), noisy(1, 32))
    assert all(s == Score(0.0) for s in scores[:30])
    assert scores[30].warm is True


def test_memories_first_learn_a_whole_day() -> None:
    # one reading per five minutes: 288 a day; the first day only teaches, whatever it holds
    values = noisy(1, 400)
    values[100] += 50.0  # on the first day: learnt, not reported
    values[350] += 50.0  # the same band again on day 2: known
    values[380] -= 50.0  # a new band on day 2: reported
    # (the weighted surprise alone would score the first day: see test_detector_calibration_novelty)
    scores = feed(NoveltyDetector(NoveltyParams(surprise_while_learning=False)), values)
    assert all(s == Score(0.0) for s in scores[:288])
    assert scores[288].warm is True
    assert scores[350].score < ALERT < scores[380].score


def test_a_visited_band_is_quiet_and_a_new_one_alerts() -> None:
    # a machine that switches between two levels: both are learnt; a third level is new
    rng = random.Random(3)
    values = [(0.0 if (i // 100) % 2 else 10.0) + rng.gauss(0.0, 0.3) for i in range(2000)]
    values[1500:1510] = [25.0 + rng.gauss(0.0, 0.3) for _ in range(10)]
    scores = feed(NoveltyDetector(), values)
    assert scores[1500].score > 0.5
    assert max(s.score for s in scores[300:1500]) < ALERT  # switching levels is routine
    assert max(s.score for s in scores[1501:1600]) < ALERT  # the onset gate: one alert


def test_spike_alerts_and_in_noise_only_new_records_do() -> None:
    values = noisy(42, 3000)
    values[2500] += 12.0
    scores = feed(NoveltyDetector(), values)
    assert scores[2500].score > 0.9
    assert max(s.score for i, s in enumerate(scores) if i != 2500) < scores[2500].score - 0.1
    # after start-up, noise alerts only where it leaves the range it has ever shown
    alerts = [i for i, s in enumerate(scores[500:], 500) if s.score >= ALERT]
    assert alerts == [724, 802, 2500]
    for i in alerts:
        assert not min(values[:i]) <= values[i] <= max(values[:i])


def test_band_comes_from_the_surprise_detector_when_it_runs() -> None:
    values = noisy(5, 400)  # past the first day (288 readings)
    with_surprise = feed(NoveltyDetector(), values)[-1]
    assert with_surprise.expected == pytest.approx(20.0, abs=0.5)
    assert with_surprise.lower is not None and with_surprise.upper is not None
    assert with_surprise.lower < with_surprise.expected < with_surprise.upper
    alone = feed(NoveltyDetector(NoveltyParams(surprise_weight=0.0)), values)[-1]
    assert (alone.expected, alone.lower, alone.upper) == (None, None, None)


def test_gaps_change_nothing() -> None:
    values = noisy(2, 300)
    plain = feed(NoveltyDetector(), values)
    gapped_detector = NoveltyDetector()
    gapped = []
    for i, v in enumerate(values):
        gapped_detector.update(i * STEP_US, math.inf)
        gapped.append(gapped_detector.update(i * STEP_US, v))
    assert gapped == plain


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"surprise_weight": 0.0, "rarity_power": 10.0, "log_values": True},
        {"scales": [[1, 1], [2, 3]], "vigilance": [0.05], "capacity": 5},
    ],
)
def test_state_round_trip_continues_identically(params: dict[str, object]) -> None:
    values = noisy(3, 1500)
    values[1200] += 15.0
    original = create_detector("novelty", params)
    feed(original, values[:700])  # type: ignore[arg-type]
    restored = restore_detector(json.loads(json.dumps(original.to_state())))
    assert isinstance(restored, NoveltyDetector)
    expected = feed(original, values[700:], start=700)  # type: ignore[arg-type]
    assert feed(restored, values[700:], start=700) == expected
    assert max(s.score for s in expected) > ALERT


def test_bad_params_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        create_detector("novelty", {"vigilance": []}, path="streams.anomaly.params")
    assert "streams.anomaly.params.vigilance" in str(info.value) + str(info.value.__dict__)
