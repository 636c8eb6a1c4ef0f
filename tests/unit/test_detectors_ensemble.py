"""The ensemble detector: members from the registry, max/mean, onset gate, round trip."""

from __future__ import annotations

import json

import pytest
from detector_series import feed, noisy

from sentio_iot.errors import ConfigError
from sentio_iot.streams.detectors.base import Score
from sentio_iot.streams.detectors.ensemble import EnsembleDetector
from sentio_iot.streams.detectors.registry import create_detector, restore_detector

# cheap members: no TensorFlow needed here
MEMBERS = [
    {"detector": "surprise", "params": {"quiet": 0, "warmup": 20}},
    {"detector": "robust_zscore", "params": {"warmup": 40}},
]


@pytest.mark.parametrize("combine", ["max", "mean"])
def test_combines_the_warm_members_scores(combine: str) -> None:
    values = noisy(1, 300)
    values[200] += 10.0
    ensemble = create_detector("ensemble", {"members": MEMBERS, "combine": combine, "quiet": 0})
    alone = [create_detector(m["detector"], m["params"]) for m in MEMBERS]  # type: ignore[arg-type]
    combined = feed(ensemble, values)
    separate = [feed(d, values) for d in alone]
    assert combined[:20] == [Score(0.0)] * 20  # no member warm yet
    for i in (30, 100, 200):  # only surprise warm at 30; both later
        warm = [s[i].score for s in separate if s[i].warm]
        want = max(warm) if combine == "max" else sum(warm) / len(warm)
        assert combined[i].score == pytest.approx(want)
        assert combined[i].expected == separate[0][i].expected
    assert combined[200].score > 0.7
    noise = [s.score for i, s in enumerate(combined[40:], 40) if i != 200]
    assert max(noise) < 0.75  # below surprise's alert thresholds (docs/ml-anomaly.md)


def test_gate_reports_the_onset_once() -> None:
    values = noisy(2, 400)
    values[250:] = [v + 12.0 for v in values[250:]]
    scores = feed(create_detector("ensemble", {"members": MEMBERS, "quiet": 100}), values)
    assert scores[250].score > 0.7
    # later readings of the episode pass only if they beat the onset's score (new maxima)
    passed = [i for i, s in enumerate(scores[250:351], 250) if s.score >= 0.5]
    assert passed[0] == 250 and len(passed) <= 3
    assert all(scores[i].score > scores[250].score for i in passed[1:])


def test_state_round_trip_continues_identically() -> None:
    values = noisy(3, 600)
    values[450] += 9.0
    original = create_detector("ensemble", {"members": MEMBERS})
    feed(original, values[:300])
    restored = restore_detector(json.loads(json.dumps(original.to_state())))
    assert isinstance(restored, EnsembleDetector)
    assert feed(restored, values[300:], 300) == feed(original, values[300:], 300)


def test_bad_member_params_name_the_member() -> None:
    with pytest.raises(ConfigError) as info:
        create_detector(
            "ensemble", {"members": [{"detector": "surprise", "params": {"quiet": -1}}]}
        )
    assert "members.0.params" in str(info.value) + repr(info.value.__dict__)
