"""Anomaly scoring per (device, metric): warm-up, episodes, refractory period, state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.streams.anomaly import AnomalyScorer, Series, series_key

S = 1_000_000
T0 = 1_700_000_000 * S
NOISE = [10.0, 10.2, 9.8, 10.1, 9.9]  # median 10, MAD 0.1


def settings(**overrides: Any) -> AnomalySettings:
    base: dict[str, Any] = {
        "detector": "robust_zscore",
        "params": {"warmup": 10},
        "threshold": 0.9,
        "refractory_s": 60,
    }
    return AnomalySettings.model_validate({**base, **overrides})


def feed(scorer: AnomalyScorer, series: Series, values: list[float], start: int = 0) -> list[Any]:
    """Values one second apart from T0 + start s; the anomalies they raise."""
    found = []
    for i, value in enumerate(values):
        ts = T0 + (start + i) * S
        anomaly = scorer.observe(series, "pump-1", "temp", ts, value, {"kind": "pump"})
        if anomaly is not None:
            found.append(anomaly)
    return found


def warm(scorer: AnomalyScorer) -> Series:
    series = scorer.new_series()
    assert feed(scorer, series, NOISE * 2) == []  # warm-up: never an anomaly
    return series


def test_a_spike_after_warm_up_is_one_anomaly_with_its_band() -> None:
    scorer = AnomalyScorer(settings())
    series = warm(scorer)
    found = feed(scorer, series, [10.0, 10.1, 50.0, 10.0], start=10)
    assert len(found) == 1
    anomaly = found[0].to_record()
    assert anomaly["ts"] == T0 + 12 * S and anomaly["value"] == 50.0
    assert anomaly["device_id"] == "pump-1" and anomaly["metric"] == "temp"
    assert 0.99 < anomaly["score"] <= 1.0 and anomaly["threshold"] == 0.9
    assert anomaly["lower"] < anomaly["expected"] < anomaly["upper"] < 50.0
    assert abs(anomaly["expected"] - 10.0) < 0.01
    assert anomaly["detector"] == "robust_zscore"
    assert anomaly["detector_version"].startswith("1-") and len(anomaly["detector_version"]) == 10
    assert anomaly["labels"] == {"kind": "pump"}


def test_warm_up_hides_a_spike() -> None:
    scorer = AnomalyScorer(settings())
    series = scorer.new_series()
    assert feed(scorer, series, [*NOISE, 500.0, *NOISE[:4]]) == []


def test_an_episode_of_high_readings_is_one_anomaly() -> None:
    scorer = AnomalyScorer(settings(params={"warmup": 10, "shift_after": 50}))
    series = warm(scorer)
    found = feed(scorer, series, [50.0, 51.0, 52.0, 10.0], start=10)
    assert [a.value for a in found] == [50.0]


def test_refractory_period_suppresses_a_new_episode_too_soon() -> None:
    scorer = AnomalyScorer(settings(refractory_s=60))
    series = warm(scorer)
    assert len(feed(scorer, series, [50.0, 10.0], start=10)) == 1  # emitted at 10 s
    assert feed(scorer, series, [10.1, 50.0, 10.0], start=40) == []  # 31 s later: suppressed
    assert series.suppressed == 1
    found = feed(scorer, series, [10.0, 50.0, 10.0], start=70)  # 61 s later: a new anomaly
    assert [a.ts for a in found] == [T0 + 71 * S]


def test_refractory_zero_reports_every_episode() -> None:
    scorer = AnomalyScorer(settings(refractory_s=0))
    series = warm(scorer)
    found = feed(scorer, series, [50.0, 10.0, 50.0, 10.0], start=10)
    assert [a.ts for a in found] == [T0 + 10 * S, T0 + 12 * S]


def test_state_round_trip_continues_identically() -> None:
    scorer = AnomalyScorer(settings())
    values = [*NOISE * 3, 40.0, 10.0, 10.1, 60.0, *NOISE]
    straight = scorer.new_series()
    expected = feed(scorer, straight, values)
    restarted = scorer.new_series()
    first = feed(scorer, restarted, values[:16])
    restored = scorer.restore(json.loads(json.dumps(restarted.to_state())))
    second = feed(scorer, restored, values[16:], start=16)
    assert [a.to_record() for a in first + second] == [a.to_record() for a in expected]
    assert len(expected) == 1  # the 60.0 three s after 40.0 is within the refractory period
    assert restored.to_state() == straight.to_state()


def test_changed_params_start_a_fresh_detector() -> None:
    old = AnomalyScorer(settings())
    series = warm(old)
    new = AnomalyScorer(settings(params={"warmup": 10, "threshold": 5.0}))
    restored = new.restore(series.to_state())
    assert restored.detector.to_state()["state"]["location"] is None  # warming up again
    assert new.detector_version != old.detector_version
    assert new.restore(None).to_state() == new.new_series().to_state()


def test_include_exclude_quality_and_null_values() -> None:
    scorer = AnomalyScorer(settings(include=["temp*", "vib*"], exclude=["vib_raw"]))
    reading = {
        "metrics": [
            {"name": "temp", "value": 1.0, "quality": "GOOD"},
            {"name": "temp_bad", "value": 2.0, "quality": "BAD"},
            {"name": "vib", "value": None, "quality": "GOOD"},
            {"name": "vib_rms", "value": 3.0, "quality": "UNCERTAIN"},
            {"name": "vib_raw", "value": 4.0, "quality": "GOOD"},
            {"name": "pressure", "value": 5.0, "quality": "GOOD"},
        ]
    }
    assert scorer.scorable(reading) == [("temp", 1.0), ("vib_rms", 3.0)]
    everything = AnomalyScorer(settings(skip_bad_quality=False))
    assert [m for m, _ in everything.scorable(reading)] == [
        "temp",
        "temp_bad",
        "vib_rms",
        "vib_raw",
        "pressure",
    ]
    assert series_key("pump-1", "temp") == "pump-1|temp"


def test_invalid_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"detector\n.*unknown detector 'nope'; installed: "):
        AnomalySettings.model_validate({"detector": "nope"})
    with pytest.raises(ValueError, match=r"params\.warmup: Input should be greater than or equal"):
        AnomalySettings.model_validate({"params": {"warmup": 0}})
    with pytest.raises(ValueError, match=r"threshold\n  Input should be less than or equal to 1"):
        AnomalySettings.model_validate({"threshold": 1.5})


def test_the_novelty_detector_runs_in_the_scorer_with_its_band() -> None:
    scorer = AnomalyScorer(
        settings(detector="novelty", params={"warmup": 10, "learn_s": 0}, threshold=0.25)
    )
    series = scorer.new_series()
    # past the surprise detector's own 50-reading warm-up, which gives the band; then a
    # spike far outside the range learnt so far
    values = [*NOISE * 12, 10.0, 30.0, 10.1]
    found = feed(scorer, series, values)
    assert [a.to_record()["value"] for a in found] == [30.0]
    anomaly = found[0].to_record()
    assert anomaly["detector"] == "novelty" and anomaly["detector_version"].startswith("2-")
    assert anomaly["score"] >= 0.25
    assert anomaly["lower"] < anomaly["expected"] < anomaly["upper"]  # the surprise band
    restored = scorer.restore(json.loads(json.dumps(series.to_state())))
    assert restored.to_state() == series.to_state()


def test_without_a_threshold_the_detector_brings_its_own() -> None:
    assert AnomalySettings().threshold is None
    assert AnomalyScorer(AnomalySettings()).threshold == 0.202  # novelty, the default
    surprise = AnomalyScorer(AnomalySettings(detector="surprise"))
    assert surprise.threshold == 0.8
    chosen = AnomalyScorer(AnomalySettings(detector="novelty", threshold=0.4))
    assert chosen.threshold == 0.4
    # what an Anomaly record carries is the threshold in force
    scorer = AnomalyScorer(settings(threshold=None))
    series = warm(scorer)
    [anomaly] = feed(scorer, series, [10.0, 50.0], start=10)
    assert anomaly.to_record()["threshold"] == 0.9  # robust_zscore's own
