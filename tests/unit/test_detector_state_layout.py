"""The detectors' stored memory: parts the params never use are neither built nor written,
and the states the older build wrote (with those parts, empty or never read) still restore.

Until 2026-12-07 ``surprise`` wrote its step moments, context memory, calibrators, recent raw
surprises and rarity calibrator whatever its params, and ``novelty`` and ``forecast`` their
rarity calibrators: with the default params about 7 KB of empty structures per series in
memory (docs/benchmarks.md, "Memory"). The ``OLD_*`` memories below were written by that build
(fd0abe5) after the 14 readings of ``PREFIX``; the states on changelogs look like them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from detector_series import feed, noisy

from sentio_iot.streams.detectors.base import Detector
from sentio_iot.streams.detectors.forecast import ForecastDetector
from sentio_iot.streams.detectors.novelty import NoveltyDetector
from sentio_iot.streams.detectors.registry import create_detector
from sentio_iot.streams.detectors.surprise import SurpriseDetector
from sentio_iot.streams.state import dump_state, load_state

STEP_US = 1_000_000  # the stream at 1 Hz
PREFIX = [20.0 + 0.5 * ((i * 7) % 5) + (3.0 if i == 9 else 0.0) for i in range(14)]
REST = noisy(5, 400, level=21.0, sigma=0.6)
REST[150] += 6.0
REST[300] -= 5.0

SMALL_SURPRISE = {"warmup": 5, "daily_slots": 2, "drift_window": 3, "history": 10}
# what the old build wrote for every surprise whatever its params (here: none used)
UNUSED_CONTEXT = {"recent": [], "counts": {}, "origin": None, "width": 1.0}
OLD_STEP = [13, 12.91032304996045, 0.03730603767728008, 51.973544298965166]
OLD_LEVEL = [14, 13.895417071611957, 21.179497361836162, 18.690671210996555]
OLD_DAILY_SLOT = [14, 11.285565565713148, 21.204133906982424, 15.771576949579458]
OLD_LAST = {
    "score": 0.0,
    "expected": 21.23219029592761,
    "lower": 16.481067633080983,
    "upper": 25.983312958774235,
    "warm": True,
}
PRIOR_SIZE = [0, 50.0, 2.1500999683112987, 0.0]  # a feature's typical size before warm-up

# What fd0abe5 wrote for the parts its parameters never used (and the last raw value).
OLD_UNUSED: dict[str, Any] = {
    "context": UNUSED_CONTEXT,
    "warmup_values": [],
    "previous": 20.5,
    "raws": {"level": [], "drift": [], "daily": []},
    "calibrators": {"level": [], "drift": [], "daily": []},
    "rarity": [],
}
OLD_SURPRISE: dict[str, Any] = {
    "level": OLD_LEVEL,
    "step": OLD_STEP,
    "drift": [14, 13.895417071611957, 21.120627274800913, 4.265250200566899],
    "daily": [OLD_DAILY_SLOT, [0, 0.0, 0.0, 0.0]],
    "window": [21.0, 22.0, 20.5],
    **OLD_UNUSED,
    "sizes": {
        "level": [9, 58.95790727224549, 6.450661276629127, 66471.42738858129],
        "drift": [6, 55.972714291385586, 3.9489128501277264, 11165.43677487909],
        "daily": [9, 58.95790727224549, 1.8479566446213886, 30.9572800045235],
    },
    "gate": [0.7948436658548207, 4],
    "last": OLD_LAST,
}

SMALL_NOVELTY = {"vigilance": [0.05], "warmup": 5, "learn_s": 0.0}  # with its inner surprise
OLD_MEMORY = {
    "block": [0.0, 0],
    "means": [20.5],
    "protos": [20.0, 21.0, 22.0, 20.5, 21.5, 24.5],
    "uses": [3, 3, 3, 3, 1, 1],
    "used_at": [11, 12, 13, 14, 5, 10],
    "windows": 14,
}
COLD_LAST = {"score": 0.0, "expected": None, "lower": None, "upper": None, "warm": False}
OLD_NOVELTY: dict[str, Any] = {
    "count": 14,
    "first_us": 0,
    "low": 20.0,
    "high": 24.5,
    "memories": [OLD_MEMORY],
    "rarity": [[]],
    "surprise": {
        "level": OLD_LEVEL,
        "step": OLD_STEP,
        "drift": [14, 13.895417071611957, 20.934605208147808, 1.4738318780713664],
        "daily": [OLD_DAILY_SLOT] + [[0, 0.0, 0.0, 0.0]] * 23,
        "window": PREFIX,
        **OLD_UNUSED,
        "sizes": {"level": PRIOR_SIZE, "drift": PRIOR_SIZE, "daily": PRIOR_SIZE},
        "gate": [0.0, 0],
        "last": COLD_LAST,
    },
    "gate": [0.9936406995230525, 4],
    "last": {"score": 0.0, "expected": None, "lower": None, "upper": None, "warm": True},
}

# the same build, with the parts on: its layout is kept as it was
CALIBRATED_SURPRISE = {
    **SMALL_SURPRISE,
    "calibrate": True,
    "smooth": 2,
    "features": ["level", "step", "context"],
    "context_length": 2,
}
OLD_CALIBRATED_SURPRISE: dict[str, Any] = {
    **OLD_SURPRISE,
    "context": {
        "recent": [8, 2],
        "counts": {"0,4": 2, "4,8": 2, "8,2": 2, "2,18": 1, "18,0": 1},
        "origin": 20.0,
        "width": 0.25,
    },
    "raws": {
        "level": [0.6851401406119283, 0.6164356072330224],
        "step": [0.43091363353268175, 0.8181261876234114],
        "context": [0.5, 0.5],
    },
    "calibrators": {
        "level": [
            1.4154392504732307,
            0.8195236414266691,
            0.9371103592364087,
            1.1590728827178092,
            2.78812532899971,
            2.9667308230507152,
            0.5845621527819895,
            0.41476018936549425,
            0.6507878739224753,
        ],
        "step": [
            1.7313848535547716,
            1.2743338531322006,
            0.7623476982144102,
            1.1442767947430368,
            2.4172836416758883,
            3.110557992592163,
            1.7120253429280026,
            0.44363728589462736,
            0.6245199105780466,
        ],
        "context": [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.5],
    },
    "sizes": {"level": PRIOR_SIZE, "step": PRIOR_SIZE, "context": PRIOR_SIZE},
    "gate": [0.6953997937429065, 4],
}
RARE_SURPRISE = {**SMALL_SURPRISE, "rarity_power": 2.0, "features": ["step", "daily"]}
OLD_RARE_SURPRISE: dict[str, Any] = {
    **OLD_SURPRISE,
    "raws": {"step": [], "daily": []},
    "calibrators": {"step": [], "daily": []},
    "rarity": [
        1.3912508010703484,
        0.6489312469895994,
        0.5641237727306246,
        1.2668203030386183,
        2.589160479858054,
        2.1075103007570353,
        0.3058344222591863,
        0.5323291383831268,
        0.553721467034901,
    ],
    "sizes": {
        "step": [9, 58.95790727224549, 3.862491415161474, 5306.976693385883],
        "daily": [9, 58.95790727224549, 1.8479566446213886, 30.9572800045235],
    },
    "gate": [0.49891911828649943, 4],
}
RARE_NOVELTY = {
    "vigilance": [0.05, 0.07],
    "warmup": 5,
    "learn_s": 0.0,
    "surprise_weight": 0.0,
    "rarity_power": 10.0,
    "history": 10,
}
OLD_RARE_NOVELTY: dict[str, Any] = {
    **OLD_NOVELTY,
    "memories": [OLD_MEMORY, OLD_MEMORY],
    "rarity": [
        [0.0, 0.0, 0.0, 0.0, 25.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 17.857142857142854, 0.0, 0.0, 0.0, 0.0],
    ],
    "surprise": None,
    "gate": [0.10636766229505798, 4],
}

# (detector, params, what the old build wrote, the entries the new one leaves out)
CASES = [
    (
        "surprise",
        SMALL_SURPRISE,
        OLD_SURPRISE,
        {"step", "context", "warmup_values", "raws", "calibrators", "rarity"},
    ),
    ("novelty", SMALL_NOVELTY, OLD_NOVELTY, {"rarity"}),
    ("surprise", CALIBRATED_SURPRISE, OLD_CALIBRATED_SURPRISE, {"rarity"}),
    (
        "surprise",
        RARE_SURPRISE,
        OLD_RARE_SURPRISE,
        {"context", "warmup_values", "raws", "calibrators"},
    ),
    ("novelty", RARE_NOVELTY, OLD_RARE_NOVELTY, set()),
]
INNER_LEFT_OUT = {"step", "context", "warmup_values", "raws", "calibrators", "rarity"}


def fed(name: str, params: dict[str, Any], values: list[float]) -> Detector[Any]:
    detector = create_detector(name, params)
    feed(detector, values, step_us=STEP_US)
    return detector


def without(memory: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in memory.items() if k not in keys}


def continue_both(
    original: Detector[Any], restored: Detector[Any], values: list[float], start: int
) -> float:
    """Feed both the same ``values``: the same scores, and the same memory after a few
    readings (before a short calibration history forgets a difference) and at the end;
    the highest score."""
    head, tail = values[:5], values[5:]
    expected = feed(original, head, start=start, step_us=STEP_US)
    assert feed(restored, head, start=start, step_us=STEP_US) == expected
    assert restored.memory() == original.memory()
    more = feed(original, tail, start=start + 5, step_us=STEP_US)
    assert feed(restored, tail, start=start + 5, step_us=STEP_US) == more
    assert restored.memory() == original.memory()
    return max(s.score for s in expected + more)


def through_changelog(memory: dict[str, Any]) -> Any:
    """The memory as a restarted worker reads it: MessagePack, as the stream writes it."""
    return load_state(dump_state(memory))


@pytest.mark.parametrize(("name", "params", "old", "left_out"), CASES)
def test_writes_the_old_memory_less_the_unused_entries(
    name: str, params: dict[str, Any], old: dict[str, Any], left_out: set[str]
) -> None:
    memory = fed(name, params, PREFIX).memory()
    expected = without(old, left_out)
    if name == "novelty" and old["surprise"] is not None:
        expected["surprise"] = without(old["surprise"], INNER_LEFT_OUT)
    assert json.loads(json.dumps(memory)) == expected


@pytest.mark.parametrize(("name", "params", "old", "left_out"), CASES)
def test_an_old_memory_restores_and_continues_identically(
    name: str, params: dict[str, Any], old: dict[str, Any], left_out: set[str]
) -> None:
    uninterrupted = fed(name, params, PREFIX)
    restored = type(uninterrupted).from_memory(uninterrupted.params, through_changelog(old))
    assert continue_both(uninterrupted, restored, REST, len(PREFIX)) > 0.5  # spikes scored


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("surprise", RARE_SURPRISE),
        ("surprise", {**CALIBRATED_SURPRISE, "rarity_power": 3.0}),  # calibrate: rarity unused
        ("novelty", RARE_NOVELTY),
        ("novelty", {"rarity_power": 5.0, "combine": "max", "learn_s": 0.0}),
    ],
)
def test_a_new_memory_with_the_parts_on_restores_and_continues_identically(
    name: str, params: dict[str, Any]
) -> None:
    original = fed(name, params, PREFIX + REST[:200])
    restored = type(original).from_memory(original.params, through_changelog(original.memory()))
    assert continue_both(original, restored, REST[200:], len(PREFIX) + 200) > 0.2


def test_default_novelty_builds_and_writes_none_of_the_unused_parts() -> None:
    detector = fed("novelty", {}, PREFIX + REST)
    assert isinstance(detector, NoveltyDetector)
    assert detector._rarity == []
    inner = detector._surprise
    assert isinstance(inner, SurpriseDetector)
    assert (inner._step, inner._context, inner._rarity) == (None, None, None)
    assert (inner._raws, inner._calibrators) == ({}, {})
    memory = detector.memory()
    assert "rarity" not in memory
    assert set(memory["surprise"]) == {
        "level",
        "drift",
        "daily",
        "window",
        "previous",
        "sizes",
        "gate",
        "last",
    }


def test_default_novelty_restores_a_memory_with_the_old_entries() -> None:
    """The exact default params (three memories, a day of learning), as on the changelogs."""
    values = PREFIX + REST
    uninterrupted = fed("novelty", {}, values[:100])
    old = uninterrupted.memory()
    old["rarity"] = [[], [], []]
    old["surprise"] = {
        **old["surprise"],
        "step": OLD_STEP,  # learnt, never read: step is not a default feature
        "context": UNUSED_CONTEXT,
        "warmup_values": [],
        "raws": {"level": [], "drift": [], "daily": []},
        "calibrators": {"level": [], "drift": [], "daily": []},
        "rarity": [],
    }
    restored = NoveltyDetector.from_memory(uninterrupted.params, through_changelog(old))
    assert len(dump_state(restored.memory())) < len(dump_state(old))
    expected = feed(uninterrupted, values[100:], start=100, step_us=STEP_US)
    assert feed(restored, values[100:], start=100, step_us=STEP_US) == expected
    assert max(s.score for s in expected) > 0.2  # the weighted surprise scores the spikes


def test_forecast_writes_its_rarity_only_when_on_and_restores_the_old_entry() -> None:
    small = {"history": 200, "warmup": 60, "retrain_every": 1000, "steps": 20, "lags": 4}
    values = noisy(6, 160)
    values[120] += 8.0
    for params in (small, {**small, "rarity_power": 2.0}):
        original = fed("forecast", params, values[:100])
        assert isinstance(original, ForecastDetector)
        memory = original.memory()
        assert ("rarity" in memory) == ("rarity_power" in params)
        if "rarity_power" not in params:
            memory = {**memory, "rarity": []}  # as the old build wrote it
        else:
            assert len(memory["rarity"]) == 100 - 60  # an error z per scored reading
        restored = ForecastDetector.from_memory(original.params, through_changelog(memory))
        expected = feed(original, values[100:], start=100, step_us=STEP_US)
        assert feed(restored, values[100:], start=100, step_us=STEP_US) == expected
        assert restored.memory() == original.memory()
