"""Serving: device windows, their state, batched predictions, routing by label or metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastavro.validation import validate

from sentio_iot.schemas import parsed_schema
from sentio_iot.settings.rul import RulSettings
from sentio_iot.streams.agents.rul import dump, load
from sentio_iot.streams.rul.model import TrainingOptions, build
from sentio_iot.streams.rul.predictor import DeviceWindow, RulPredictor
from sentio_iot.streams.rul.preprocessing import Preprocessing, pad
from sentio_iot.streams.rul.routing import ModelRouter
from sentio_iot.streams.rul.serving import RulBatch
from sentio_iot.streams.rul.store import LoadedModel, ModelStore
from sentio_iot.streams.state import load_state

PREP = Preprocessing(("a", "b"), 3, 100.0, "hours", minimum=[[0.0, 10.0]], maximum=[[2.0, 20.0]])


def loaded(seed: int = 1) -> LoadedModel:
    return LoadedModel(
        "m", 4, build(3, 2, 100.0, seed, TrainingOptions(filters=4, dense=4)), PREP, {}
    )


def feed(predictor: RulPredictor, window: DeviceWindow, rows: list[tuple[float, float]]) -> None:
    for ts, (a, b) in enumerate(rows, start=1):
        assert predictor.observe(
            window, {"a": a, "b": b, "other": 9.0}, ts * 1_000_000, {"kind": "pump"}
        )


def test_window_keeps_the_last_rows_and_skips_incomplete_readings() -> None:
    predictor = RulPredictor(loaded())
    window = DeviceWindow("m")
    feed(predictor, window, [(0.0, 10.0), (1.0, 11.0), (2.0, 12.0), (3.0, 13.0)])
    assert window.rows == [[1.0, 11.0], [2.0, 12.0], [3.0, 13.0]]
    assert window.ts_us == 4_000_000 and window.labels == {"kind": "pump"}
    assert not predictor.observe(window, {"a": 5.0}, 5_000_000, {})
    assert not predictor.observe(window, {"a": 5.0, "b": float("nan")}, 5_000_000, {})
    assert window.rows[-1] == [3.0, 13.0] and window.ts_us == 4_000_000


def test_state_round_trip_through_json() -> None:
    window = DeviceWindow("m", [[1.0, 2.0]], 7, {"kind": "motor"}, 5, 40, [[0.5, 1.5]])
    again = DeviceWindow.from_state(json.loads(json.dumps(window.to_state())))
    assert again == window
    # state written before ages were kept: the window's rows are all the history known
    old = {k: v for k, v in window.to_state().items() if k not in ("count", "first")}
    assert DeviceWindow.from_state(old) == DeviceWindow(
        "m", [[1.0, 2.0]], 7, {"kind": "motor"}, 5, 1
    )


def test_history_inputs_in_the_stream_equal_the_offline_ones() -> None:
    prep = Preprocessing(
        ("a", "b"), 3, 100.0, "hours", minimum=[[0.0, 10.0]], maximum=[[2.0, 20.0]],
        context=("age", "drift"), baseline_rows=4,
    )  # fmt: skip
    model = LoadedModel(
        "m", 1, build(3, prep.inputs, 100.0, 1, TrainingOptions(filters=4, dense=4)), prep, {}
    )
    predictor = RulPredictor(model)
    rng = np.random.default_rng(3)
    history = np.column_stack([rng.uniform(0, 2, 9), rng.uniform(10, 20, 9)])
    window = DeviceWindow("m")
    for count in range(
        1, len(history) + 1
    ):  # shorter than the window and the baseline, then longer
        a, b = history[count - 1]
        assert predictor.observe(window, {"a": a, "b": b}, count, {})
        offline = pad(prep.history(history[:count]), 3)
        np.testing.assert_allclose(predictor.inputs([window])[0], offline, rtol=1e-6)
    assert window.count == 9 and len(window.first) == 4 and len(window.rows) == 3
    again = DeviceWindow.from_state(json.loads(json.dumps(window.to_state())))
    np.testing.assert_array_equal(predictor.inputs([again]), predictor.inputs([window]))
    # a window-only model keeps the baseline rows too, for a version with drift promoted later
    plain = DeviceWindow("m")
    feed(RulPredictor(loaded()), plain, [(float(i), 10.0) for i in range(25)])
    assert plain.count == 25 and plain.first == [[float(i), 10.0] for i in range(20)]


def test_batch_equals_one_by_one_and_the_record_matches_the_schema() -> None:
    model = loaded()
    predictor = RulPredictor(model)
    histories = {
        "d1": [(0.5, 12.0), (1.0, 14.0), (1.5, 16.0)],
        "d2": [(2.0, 20.0)],  # shorter than the window: padded with its first row
        "d3": [(0.0, 10.0), (0.2, 10.5), (0.4, 11.0), (0.6, 11.5)],
    }
    windows = {}
    for device, rows in histories.items():
        windows[device] = DeviceWindow("m")
        feed(predictor, windows[device], rows)
    records = predictor.predict_batch(list(windows.items()))
    assert [r["device_id"] for r in records] == ["d1", "d2", "d3"]
    for record, (device, rows) in zip(records, histories.items(), strict=True):
        scaled = PREP.scale(np.asarray(rows[-3:], dtype=np.float64))
        expected = float(np.asarray(model.network(pad(scaled, 3)[None])).reshape(-1)[0])
        assert record["rul"] == pytest.approx(max(0.0, expected), rel=1e-5, abs=1e-6)
        assert record["ts"] == len(rows) * 1_000_000
        assert windows[device].predicted_us is None  # RulBatch decides when a device is due
    assert records[0] | {"rul": 0} == {
        "device_id": "d1",
        "ts": 3_000_000,
        "rul": 0,
        "rul_unit": "hours",
        "lower": None,
        "upper": None,
        "model_name": "m",
        "model_version": "4",
        "window_size": 3,
        "labels": {"kind": "pump"},
    }
    for record in records:
        assert validate(record, parsed_schema("RulPrediction"), raise_errors=True)


def test_due_by_event_time() -> None:
    window = DeviceWindow("m", [[1.0, 2.0]], ts_us=10_000_000, predicted_us=None)
    assert window.due(5_000_000)
    window.predicted_us = 8_000_000
    assert not window.due(5_000_000)
    window.ts_us = 13_000_000
    assert window.due(5_000_000)


def test_router_by_label_then_by_metrics(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, shipped=None)
    store.save("by_metrics", loaded().network, PREP, {})
    settings = RulSettings(models={"pump": "plant_pump"}, feature_models=["missing", "by_metrics"])
    router = ModelRouter(settings, store)
    assert router.model_for({"kind": "pump"}, ["x"]) == "plant_pump"
    assert router.model_for({"kind": "fan"}, ["a", "b", "c"]) == "by_metrics"
    assert router.model_for({}, ["a"]) is None
    assert router.predictor("missing") is None
    predictor = router.predictor("by_metrics")
    assert predictor is not None and predictor.metrics == ("a", "b")
    assert predictor.model.version == 1


def reading(device: str, ts_s: int, a: float, b: float, kind: str = "fan") -> dict[str, object]:
    metrics = [{"name": "a", "value": a}, {"name": "b", "value": b}]
    return {
        "device_id": device,
        "ts": ts_s * 1_000_000,
        "metrics": metrics,
        "labels": {"kind": kind},
    }


def test_batch_of_readings_predicts_each_due_device_once(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, shipped=None)
    store.save("by_metrics", loaded().network, PREP, {})
    router = ModelRouter(RulSettings(models={}, feature_models=["by_metrics"]), store)
    batch = RulBatch(router, min_interval_s=10)
    for device in ("d1", "d2", "d3"):
        batch.windows[device] = None  # none stored yet
    for ts in (1, 2, 3):
        assert batch.add(reading("d1", ts, 0.5 * ts, 12.0))
    assert batch.add(reading("d2", 5, 1.0, 15.0))
    assert not batch.add({"device_id": "d3", "ts": 1, "metrics": [], "labels": {}})
    out = list(batch.predictions(batch_size=1))  # one model call per device here
    assert [(name, [r["device_id"] for r in records]) for name, records in out] == [
        ("by_metrics", ["d1"]),
        ("by_metrics", ["d2"]),
    ]
    assert batch.windows["d3"] is None
    # the reading at 1 s made d1 due; the prediction is of its window at the batch's end
    assert out[0][1][0]["ts"] == 3_000_000 and batch.windows["d1"].predicted_us == 1_000_000  # type: ignore[union-attr]

    # the next batch restores d1 from its state: 9 s after the due reading it is not due,
    # 10 s after it is
    state = dump(batch.windows["d1"])  # type: ignore[arg-type]
    later = RulBatch(router, min_interval_s=10)
    later.windows["d1"] = load(state)
    later.add(reading("d1", 10, 1.8, 12.5))
    assert list(later.predictions(batch_size=8)) == []
    later.add(reading("d1", 11, 1.9, 12.8))
    later.add(reading("d1", 13, 2.0, 13.0))
    [(_, [record])] = list(later.predictions(batch_size=8))
    assert record["ts"] == 13_000_000 and record["window_size"] == 3
    restored = DeviceWindow.from_state(load_state(dump(later.windows["d1"])))  # type: ignore[arg-type]
    assert restored.rows == [[1.8, 12.5], [1.9, 12.8], [2.0, 13.0]]
    assert restored.predicted_us == 11_000_000


@pytest.mark.parametrize("cut", [1, 4, 7, 50])
def test_windows_and_due_readings_do_not_depend_on_batch_cuts(tmp_path: Path, cut: int) -> None:
    store = ModelStore(tmp_path, shipped=None)
    store.save("by_metrics", loaded().network, PREP, {})
    router = ModelRouter(RulSettings(models={}, feature_models=["by_metrics"]), store)
    readings = [reading(f"d{n}", ts, 0.1 * ts, 10.0 + n) for ts in range(40) for n in (1, 2)]

    def states(size: int) -> tuple[dict[str, dict[str, object]], list[tuple[str, int]]]:
        windows: dict[str, DeviceWindow | None] = {}
        due: list[tuple[str, int]] = []
        for first in range(0, len(readings), size):
            batch = RulBatch(router, min_interval_s=10)
            batch.windows.update(windows)
            for record in readings[first : first + size]:
                device = str(record["device_id"])
                before = batch.windows.get(device)
                seen = before.predicted_us if before is not None else None
                batch.add(record)
                after = batch.windows[device]
                if after is not None and after.predicted_us != seen:
                    due.append((device, after.predicted_us or 0))
            windows = batch.windows
        return {d: w.to_state() for d, w in windows.items() if w is not None}, due

    one_by_one = states(1)
    assert states(cut) == one_by_one
    # due at 0, 10, 20 and 30 s: at most one prediction per 10 s of event time
    assert [ts for d, ts in one_by_one[1] if d == "d1"] == [0, 10_000_000, 20_000_000, 30_000_000]


def test_the_compiled_network_gives_the_eager_calls_outputs_for_any_batch_size() -> None:
    from sentio_iot.streams.rul.predictor import compiled

    network = build(3, 2, 100.0, 7, TrainingOptions(filters=4, dense=4))
    infer = compiled(network)
    rng = np.random.default_rng(3)
    for size in (1, 3, 17, 256):
        x = rng.random((size, 3, 2), dtype=np.float32)
        eager = np.asarray(network(x, training=False))
        assert np.asarray(infer(x)).shape == eager.shape
        np.testing.assert_allclose(np.asarray(infer(x)), eager, rtol=1e-6, atol=1e-6)
