"""The detectors' scores, pinned: a faster implementation must score exactly as before.

The figures below were computed by the detectors of 7f03b99 (before the per-point path of
``novelty`` and ``surprise`` was rewritten for speed, issue 13) on the same series: spikes,
a daily cycle, a level step, NaN gaps, each detector saved and restored through
MessagePack twice on the way, at three reading intervals (NAB's 5 min, the stream's 1 s,
and 1 min). Per case: warm scores, the sum of the scores and of the expected values, and
the three highest scores with their positions. ``benchmarks/detector_cost.py --versus``
compares two builds value by value.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.streams.anomaly import AnomalyScorer
from sentio_iot.streams.detectors.base import Detector
from sentio_iot.streams.detectors.registry import create_detector
from sentio_iot.streams.state import dump_state, load_state

SEEDS = [(1, 300), (2, 1), (3, 60)]  # (series, seconds between readings)
Summary = tuple[int, float, float, list[tuple[int, float]]]

PINNED: list[tuple[str, dict[str, Any], list[Summary]]] = [
    (
        "novelty",
        {},
        [
            (
                1150,
                19.600194137241086,
                24371.897624317087,
                [(296, 0.792569216237117), (989, 0.7702046942149264), (1150, 0.35878794798039587)],
            ),
            (
                1150,
                18.702334798001576,
                24219.033360716774,
                [
                    (56, 0.23744331765311955),
                    (1008, 0.21672463422715496),
                    (1137, 0.21336079293651658),
                ],
            ),
            (
                1150,
                14.458528449727797,
                24420.438637944884,
                [(61, 0.24938627372072794), (477, 0.2262809892513576), (898, 0.21758827105976056)],
            ),
        ],
    ),
    (
        "surprise",
        {},
        [
            (
                1150,
                56.591935999076625,
                24371.897624317087,
                [(289, 0.9918311225002752), (154, 0.9363826970847485), (789, 0.8797210354151862)],
            ),
            (
                1150,
                29.003846749237848,
                24219.033360716774,
                [(56, 0.9497732706124782), (1008, 0.8668985369086198), (1137, 0.8534431717460663)],
            ),
            (
                1150,
                23.951597878039802,
                24420.438637944884,
                [(61, 0.9975450948829118), (477, 0.9051239570054304), (898, 0.8703530842390422)],
            ),
        ],
    ),
    (
        "calibrated",
        {},
        [
            (
                1050,
                2.3326015690938857,
                22036.48827454811,
                [(296, 0.7032672458487592), (989, 0.36384782255739256), (289, 0.29814956561835604)],
            ),
            (
                1050,
                0.8676011850813439,
                21901.24902493669,
                [(1008, 0.3083762413730011), (1137, 0.2858687268002815), (414, 0.2733562169080612)],
            ),
            (
                1050,
                0.5829666467842574,
                22075.99718660078,
                [(477, 0.29311772015273985), (898, 0.2898489266315175), (0, 0.0)],
            ),
        ],
    ),
    (
        "novelty",
        {"log_values": True, "learn_s": 3600.0},
        [
            (
                1150,
                11.983556758166403,
                24371.897624317087,
                [(154, 0.9992776101518216), (347, 0.7213066331919266), (289, 0.5210283931448423)],
            ),
            (
                1150,
                18.702334798001576,
                24219.033360716774,
                [
                    (56, 0.23744331765311955),
                    (1008, 0.21672463422715496),
                    (1137, 0.21336079293651658),
                ],
            ),
            (
                1150,
                15.672570429425441,
                24420.438637944884,
                [(61, 0.9965114745518683), (445, 0.9869833815760375), (588, 0.4172659674362737)],
            ),
        ],
    ),
]


def pin_series(seed: int, n: int = 1200) -> list[float]:
    rng = random.Random(seed)
    values = []
    for i in range(n):
        v = 20 + 5 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.5)
        if rng.random() < 0.01:
            v += rng.choice([-1, 1]) * 15
        if i > 800:
            v += 6
        if rng.random() < 0.005:
            v = math.nan
        values.append(v)
    return values


def run_case(detector: Detector[Any], seed: int, step_s: int) -> Summary:
    scores = []
    for i, value in enumerate(pin_series(seed)):
        if i in (300, 700):  # a restart: the state through the changelog's encoding
            detector = type(detector).from_state(load_state(dump_state(detector.to_state())))
        s = detector.update(1_700_000_000_000_000 + i * step_s * 1_000_000, value)
        scores.append((s.score, s.expected, s.warm))
    warm = sum(1 for _, _, w in scores if w)
    total = sum(s for s, _, _ in scores)
    expected = sum(e for _, e, _ in scores if e is not None)
    top = sorted(range(len(scores)), key=lambda i: -scores[i][0])[:3]
    return warm, total, expected, [(i, scores[i][0]) for i in top]


@pytest.mark.parametrize(("name", "params", "pinned"), PINNED, ids=lambda v: str(v)[:40])
def test_scores_are_those_of_the_reference_implementation(
    name: str, params: dict[str, Any], pinned: list[Summary]
) -> None:
    for (seed, step_s), (warm, total, expected, top) in zip(SEEDS, pinned, strict=True):
        got = run_case(create_detector(name, params), seed, step_s)
        assert got[0] == warm
        assert got[1] == pytest.approx(total, rel=1e-12, abs=1e-12)
        assert got[2] == pytest.approx(expected, rel=1e-12)
        assert [i for i, _ in got[3]] == [i for i, _ in top]
        assert [s for _, s in got[3]] == pytest.approx([s for _, s in top], rel=1e-12)


def test_the_scorer_continues_identically_from_a_dumped_device() -> None:
    """The stream's path (one record per device, MessagePack) resumes bit for bit."""
    scorer = AnomalyScorer(AnomalySettings())
    values = pin_series(4)
    straight = scorer.new_series()
    device = {"m": scorer.new_series()}
    for i, value in enumerate(values):
        ts = 1_700_000_000_000_000 + i * 1_000_000
        if i % 97 == 0:
            device = scorer.restore_device(load_state(dump_state(scorer.dump_device(device))))
        a = straight.detector.update(ts, value)
        b = device["m"].detector.update(ts, value)
        assert (a.score, a.expected, a.lower, a.upper, a.warm) == (
            b.score,
            b.expected,
            b.lower,
            b.upper,
            b.warm,
        )
    assert dump_state(scorer.dump_device({"m": straight})) == dump_state(scorer.dump_device(device))


@pytest.mark.parametrize("name", ["novelty", "surprise", "robust_zscore", "calibrated"])
def test_observe_answers_what_update_answers(name: str) -> None:
    """The anomaly step's path (``observe``, ``latest``) against ``update`` on a twin."""
    by_update, by_observe = create_detector(name), create_detector(name)
    for i, value in enumerate(pin_series(5, 700)):
        ts = 1_700_000_000_000_000 + i * 300_000_000
        expected = by_update.update(ts, value)
        score = by_observe.observe(ts, value)
        if not expected.warm:
            assert score == -1.0
            continue
        assert score == expected.score
        assert by_observe.latest() == expected
