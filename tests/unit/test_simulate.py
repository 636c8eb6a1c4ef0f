"""The simulated plant: determinism, seasonality, injected anomalies, degradation, pacing."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sentio_iot.config import load_config
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.recording import RecordingEmitter
from sentio_iot.producers.simulate.anomalies import (
    GROUND_TRUTH_FIELDS,
    Anomaly,
    GroundTruthRow,
    GroundTruthWriter,
    iso_utc,
)
from sentio_iot.producers.simulate.config import AnomalyKind, DeviceKind, SimulateConfig
from sentio_iot.producers.simulate.connector import Pacer, SimulatedPlantConnector
from sentio_iot.producers.simulate.plant import (
    MODELS,
    NOISE_BOUND,
    Plant,
    PlantTick,
    daily_cycle,
    fleet_kinds,
    wear_level,
)
from sentio_iot.records import EventKind

START = "2024-03-01T00:00:00Z"
START_US = 1_709_251_200_000_000
HOUR_US = 3_600_000_000


def config(**changes: Any) -> SimulateConfig:
    settings: dict[str, Any] = {"devices": 8, "seed": 7, "start_time": START}
    return SimulateConfig.model_validate({**settings, **changes})


def run_plant(cfg: SimulateConfig, ticks: int) -> list[PlantTick]:
    plant = Plant(cfg, cfg.start_us(0))
    return [plant.step() for _ in range(ticks)]


def values(ticks: list[PlantTick]) -> dict[tuple[str, str, int], float]:
    """(device, metric, tick) -> value (the plant never leaves one out)."""
    return {
        (r.device_id, m.name, r.seq): m.value if m.value is not None else math.nan
        for t in ticks
        for r in t.readings
        for m in r.metrics
    }


def as_json(ticks: list[PlantTick]) -> str:
    return json.dumps([r.to_record() for t in ticks for r in t.readings])


# -- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_readings_and_another_seed_does_not() -> None:
    first = as_json(run_plant(config(anomaly_rate=5), 50))
    assert first == as_json(run_plant(config(anomaly_rate=5), 50))
    assert first != as_json(run_plant(config(anomaly_rate=5, seed=8), 50))


async def test_connector_runs_are_byte_identical_including_the_ground_truth(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        truth = tmp_path / f"{run}.jsonl"
        cfg = config(rate=1e6, count=30, anomaly_rate=30, ground_truth_path=truth)
        emitted = RecordingEmitter()
        connector = SimulatedPlantConnector(cfg, emitted, ConnectorContext(site="hall-1"))
        await connector.connect()
        await connector.run()
        await connector.close()
        records = [r.to_record() for r in emitted.readings]
        outputs.append((json.dumps(records), truth.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][1].count(b"\n") > 0


async def test_connector_emits_every_device_with_increasing_seq_and_labels() -> None:
    emitted = RecordingEmitter()
    cfg = config(rate=1e6, count=4, labels={"line": "2"})
    connector = SimulatedPlantConnector(cfg, emitted, ConnectorContext(tenant="acme", site="s1"))
    await connector.connect()
    await connector.run()
    assert len(emitted.readings) == 8 * 4
    assert [e.kind for e in emitted.events] == [EventKind.ONLINE] * 8
    by_device: dict[str, list[int]] = {}
    for r in emitted.readings:
        by_device.setdefault(r.device_id, []).append(r.seq)
        assert r.source == "simulate"
        assert r.labels == {"tenant": "acme", "site": "s1", "line": "2", "kind": r.labels["kind"]}
        assert r.device_id.startswith(f"sim-{r.labels['kind']}-")
    assert all(seqs == [0, 1, 2, 3] for seqs in by_device.values())
    assert len(by_device) == 8
    times = sorted({r.ts_us for r in emitted.readings})
    assert times == [START_US + i * 1 for i in range(4)]  # 1e6 readings/s: 1 us steps


def test_fleet_mix_follows_the_weights() -> None:
    kinds = fleet_kinds(config(devices=8, kinds={"pump": 3, "environment": 1}))
    assert sorted(kinds) == [DeviceKind.ENVIRONMENT] * 2 + [DeviceKind.PUMP] * 6
    plant = Plant(config(devices=10), START_US)
    counts = {kind: sum(d.kind is kind for d in plant.devices) for kind in DeviceKind}
    assert sorted(counts.values()) == [2, 2, 3, 3]
    pumps = sorted(d.device_id for d in plant.devices if d.kind is DeviceKind.PUMP)
    assert pumps[0] == "sim-pump-01"
    assert [m.name for m in MODELS[DeviceKind.PUMP]] == [
        "flow",
        "pressure",
        "vibration",
        "temperature",
        "current",
    ]
    assert all(3 <= len(models) <= 6 for models in MODELS.values())


# -- seasonality ------------------------------------------------------------------------------


def test_daily_cycle_peaks_at_the_peak_hour() -> None:
    assert daily_cycle(START_US + 14 * HOUR_US, 14.0) == pytest.approx(1.0)
    assert daily_cycle(START_US + 2 * HOUR_US, 14.0) == pytest.approx(-1.0)
    assert daily_cycle(START_US + 20 * HOUR_US, 14.0) == pytest.approx(0.0, abs=1e-12)
    assert daily_cycle(START_US + 38 * HOUR_US, 14.0) == pytest.approx(1.0)


def test_healthy_readings_follow_level_plus_daily_cycle_within_the_noise() -> None:
    # one reading per plant hour for two days: time_acceleration 3600 at 1 reading/s
    cfg = config(anomaly_rate=0, degrading_fraction=0, time_acceleration=3600)
    plant = Plant(cfg, cfg.start_us(0))
    ticks = [plant.step() for _ in range(48)]
    for tick in ticks:
        for device, reading in zip(plant.devices, tick.readings, strict=True):
            for i, (model, metric) in enumerate(zip(device.models, reading.metrics, strict=True)):
                expected = device.levels[i] + model.amplitude * daily_cycle(
                    tick.ts_us, model.peak_hour
                )
                assert metric.value is not None
                assert abs(metric.value - expected) <= NOISE_BOUND * model.noise + 1e-9
                assert metric.unit == model.unit
    # co2 (peak 11:00) is far higher at 11:00 than at 23:00 every day, whatever the noise
    env = [i for i, d in enumerate(plant.devices) if d.kind is DeviceKind.ENVIRONMENT]
    for day in (0, 24):
        for i in env:
            peak, trough = ticks[day + 11].readings[i], ticks[day + 23].readings[i]
            assert peak.metrics[3].value is not None and trough.metrics[3].value is not None
            assert peak.metrics[3].value - trough.metrics[3].value > 300


# -- anomalies --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(AnomalyKind))
def test_each_anomaly_kind_is_where_the_ground_truth_says(kind: AnomalyKind) -> None:
    base = {"anomaly_kinds": {kind.value: 1.0}, "degrading_fraction": 0, "time_acceleration": 60}
    settings = {**base, "anomaly_min_s": 300, "anomaly_max_s": 900}
    ticks = run_plant(config(anomaly_rate=4, **settings), 240)  # 4 plant hours, 1 reading/min
    clean = values(run_plant(config(anomaly_rate=0, **settings), 240))
    seen = values(ticks)
    plant = Plant(config(**settings), START_US)
    device_of = {d.device_id: d for d in plant.devices}
    truth = [row for t in ticks for row in t.truth]
    assert len(truth) >= 8 and {row.kind for row in truth} == {kind.value}
    inside: set[tuple[str, str, int]] = set()
    for row in truth:
        first = (row.start_us - START_US) // 60_000_000
        last = min((row.end_us - START_US) // 60_000_000, 239)
        window = range(first, last + 1)
        inside.update((row.device, row.metric, n) for n in window)
        got = [seen[row.device, row.metric, n] for n in window]
        normal = [clean[row.device, row.metric, n] for n in window]
        assert row.magnitude is not None
        if kind is AnomalyKind.SPIKE:
            assert row.start_us == row.end_us
            device = device_of[row.device]
            metric = [m.name for m in device.models].index(row.metric)
            assert got[0] > device.normal_range(metric)[1]
            assert got[0] - normal[0] == pytest.approx(row.magnitude)
        elif kind is AnomalyKind.LEVEL_SHIFT:
            assert [g - n for g, n in zip(got, normal, strict=True)] == pytest.approx(
                [row.magnitude] * len(window)
            )
        elif kind is AnomalyKind.DRIFT:
            steps = (row.end_us - row.start_us) // 60_000_000 + 1
            expected = [row.magnitude * (k + 1) / steps for k in range(len(window))]
            assert [g - n for g, n in zip(got, normal, strict=True)] == pytest.approx(expected)
        else:
            assert got == [normal[0]] * len(window)
            assert len(set(normal)) > 1  # the real signal moved meanwhile
    outside = [key for key in seen if key not in inside]
    assert outside and all(seen[key] == clean[key] for key in outside)


def test_anomaly_applies_its_kind() -> None:
    assert Anomaly(AnomalyKind.SPIKE, 0, 5, 5, 10.0).apply(1.0, 5) == 11.0
    assert Anomaly(AnomalyKind.LEVEL_SHIFT, 0, 5, 8, -2.0).apply(1.0, 7) == -1.0
    drift = Anomaly(AnomalyKind.DRIFT, 0, 0, 3, 8.0)
    assert [drift.apply(1.0, t) for t in range(4)] == [3.0, 5.0, 7.0, 9.0]
    stuck = Anomaly(AnomalyKind.STUCK, 0, 0, 3, 0.0)
    assert [stuck.apply(v, t) for t, v in enumerate([4.0, 5.0, 6.0])] == [4.0, 4.0, 4.0]


# -- degradation ------------------------------------------------------------------------------


def test_wear_rises_monotonically_to_one_at_failure() -> None:
    levels = [wear_level(age, 100) for age in range(101)]
    assert levels[0] == 0.0 and levels[100] == 1.0 and levels[50] == 0.125
    assert all(a <= b for a, b in itertools.pairwise(levels))


def test_degrading_machines_wear_toward_failure_then_are_replaced() -> None:
    settings = {"devices": 4, "kinds": {"pump": 1}, "anomaly_rate": 0, "time_acceleration": 600}
    settings |= {"failure_min_h": 2, "failure_max_h": 3}  # one reading per 10 plant minutes
    ticks = run_plant(config(degrading_fraction=1, **settings), 30)
    healthy = values(run_plant(config(degrading_fraction=0, **settings), 30))
    worn = values(ticks)
    truth = [row for t in ticks for row in t.truth]
    failures = [row for row in truth if row.kind == "failure"]
    assert {row.device for row in failures} == {f"sim-pump-{n}" for n in range(1, 5)}
    events = [e for t in ticks for e in t.events]
    assert [(e.device_id, e.ts_us, e.kind) for e in events] == [
        (row.device, row.start_us, EventKind.ERROR) for row in failures
    ]
    for failure in failures:
        rise = [
            row
            for row in truth
            if row.device == failure.device
            and row.kind == "degradation"
            and row.metric == "vibration"
            and row.end_us == failure.start_us
        ]
        assert len(rise) == 1 and rise[0].magnitude == 9.0
        assert rise[0].rul_s == (rise[0].end_us - rise[0].start_us) / 1e6
        assert 2 * 3600 <= rise[0].rul_s <= 3 * 3600
        first = (rise[0].start_us - START_US) // 600_000_000
        last = (failure.start_us - START_US) // 600_000_000
        extra = [
            worn[failure.device, "vibration", n] - healthy[failure.device, "vibration", n]
            for n in range(first, min(last + 2, 30))
        ]
        assert extra[0] == 0.0 and extra[last - first] == pytest.approx(9.0)
        assert all(a <= b for a, b in itertools.pairwise(extra[: last - first + 1]))
        if last + 1 < 30:
            assert extra[-1] == 0.0  # a new machine after the failure


# -- pacing and configuration -----------------------------------------------------------------


def test_pacer_spaces_ticks_and_forgives_a_long_lag() -> None:
    pacer = Pacer(interval_s=0.1, anchor_s=100.0)
    assert pacer.delay(0, 100.0) == 0.0
    assert pacer.delay(1, 100.0) == pytest.approx(0.1)
    assert pacer.delay(5, 100.2) == pytest.approx(0.3)
    assert pacer.delay(30, 103.5) == 0.0  # 0.5 s late: caught up, not forgiven
    assert pacer.forgiven == 0
    assert pacer.delay(100, 112.0) == 0.0  # 2 s late: start again from now
    assert pacer.forgiven == 1
    assert pacer.delay(101, 112.0) == pytest.approx(0.1)


def test_rates_steps_and_limits() -> None:
    per_fleet = config(devices=50, rate=100, rate_per="fleet", time_acceleration=60)
    assert per_fleet.device_rate == 2.0
    assert per_fleet.tick_interval_s == 0.5
    assert per_fleet.step_us == 30_000_000
    assert config(duration_s=3600, time_acceleration=60).max_ticks == 60
    assert config(duration_s=3600, count=10).max_ticks == 10
    assert config().max_ticks is None
    assert config().start_us(0) == START_US
    assert SimulateConfig().start_us(123) == 123


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="anomaly_min_s must not exceed"):
        config(anomaly_min_s=10, anomaly_max_s=5)
    with pytest.raises(ValidationError, match="kinds needs weights"):
        config(kinds={"pump": 0})
    with pytest.raises(ValidationError, match="Extra inputs"):
        config(device_count=3)


def test_config_validates_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sentio.yaml"
    path.write_text("producers:\n  simulate:\n    - devices: 3\n      rate: 0.5\n")
    assert load_config(path).producers["simulate"][0]["devices"] == 3


async def test_ground_truth_csv_has_the_documented_columns(tmp_path: Path) -> None:
    truth = tmp_path / "truth" / "anomalies.csv"
    cfg = config(
        rate=1e6, count=120, anomaly_rate=60, time_acceleration=60, ground_truth_path=truth
    )
    connector = SimulatedPlantConnector(cfg, RecordingEmitter(), ConnectorContext())
    await connector.connect()
    await connector.run()
    await connector.close()
    rows = list(csv.DictReader(truth.read_text().splitlines()))
    assert tuple(rows[0]) == GROUND_TRUTH_FIELDS
    expected = [row for t in run_plant(cfg, 120) for row in t.truth]
    assert len(rows) == len(expected) > 0
    for got, want in zip(rows, expected, strict=True):
        assert got["device"] == want.device and got["kind"] == want.kind
        assert got["start_ts"] == iso_utc(want.start_us) and int(got["end_us"]) == want.end_us
    assert iso_utc(START_US) == "2024-03-01T00:00:00.000000Z"


def test_ground_truth_appends_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    row = GroundTruthRow("sim-pump-1", "flow", "spike", START_US, START_US, magnitude=3.5)
    for append in (False, True):
        writer = GroundTruthWriter(path, append=append)
        writer.write([row])
        writer.close()
    lines = path.read_text().splitlines()
    row_line = (
        "sim-pump-1,flow,spike,2024-03-01T00:00:00.000000Z,2024-03-01T00:00:00.000000Z,"
        f"{START_US},{START_US},3.5,"
    )
    assert lines == [",".join(GROUND_TRUTH_FIELDS), row_line, row_line]
    writer = GroundTruthWriter(tmp_path / "truth.jsonl")
    writer.write([row])
    writer.close()
    assert json.loads((tmp_path / "truth.jsonl").read_text()) == {
        "device": "sim-pump-1",
        "metric": "flow",
        "kind": "spike",
        "start_ts": "2024-03-01T00:00:00.000000Z",
        "end_ts": "2024-03-01T00:00:00.000000Z",
        "start_us": START_US,
        "end_us": START_US,
        "magnitude": 3.5,
        "rul_s": None,
    }
