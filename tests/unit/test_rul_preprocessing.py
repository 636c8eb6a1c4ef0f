"""C-MAPSS protocol pieces: reading files, conditions, scaling, windows, padding, targets, scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sentio_iot.errors import ConfigError
from sentio_iot.streams.rul.cmapss import (
    COLUMNS,
    INFORMATIVE,
    fingerprint,
    nasa_score,
    read_engines,
    read_rul,
    rmse,
)
from sentio_iot.streams.rul.preprocessing import Preprocessing, fit, kmeans, pad, targets, windows
from sentio_iot.streams.rul.training import dataset_from_engines, operating_conditions

DATA = Path(__file__).parent.parent / "data" / "cmapss"


def test_nasa_score_hand_computed() -> None:
    # early by 13 cycles: e^1 - 1; late by 10: e^1 - 1; exact: 0
    predicted = np.array([87.0, 110.0, 50.0])
    actual = np.array([100.0, 100.0, 50.0])
    assert nasa_score(predicted, actual) == pytest.approx(2 * (math.e - 1))
    # late costs more than early for the same miss
    assert nasa_score(np.array([105.0]), np.array([100.0])) == pytest.approx(math.exp(0.5) - 1)
    assert nasa_score(np.array([95.0]), np.array([100.0])) == pytest.approx(math.exp(5 / 13) - 1)


def test_rmse_hand_computed() -> None:
    assert rmse(np.array([1.0, 5.0]), np.array([4.0, 1.0])) == pytest.approx(math.sqrt(12.5))


def test_min_max_scaling_per_feature() -> None:
    rows = np.array([[0.0, 10.0], [5.0, 30.0], [10.0, 20.0]])
    prep = fit(rows, ("a", "b"), window=2, cap=125, rul_unit="cycles")
    assert prep.minimum == [[0.0, 10.0]] and prep.maximum == [[10.0, 30.0]]
    np.testing.assert_allclose(
        prep.scale(np.array([[2.5, 25.0], [20.0, 10.0]])), [[0.25, 0.75], [2.0, 0.0]]
    )


def test_constant_feature_scales_to_zero() -> None:
    prep = fit(np.array([[1.0, 7.0], [2.0, 7.0]]), ("a", "b"), window=1, cap=1, rul_unit="cycles")
    np.testing.assert_allclose(prep.scale(np.array([[1.5, 7.0]])), [[0.5, 0.0]])


def test_scaling_per_operating_condition() -> None:
    # feature "a" sits around 100 in condition (0, 0) and around 500 in condition (40, 1)
    rows = np.array(
        [[100.0, 0.0, 0.0], [110.0, 0.01, 0.0], [500.0, 40.0, 1.0], [540.0, 40.02, 1.0]]
    )
    prep = fit(
        rows,
        ("a",),
        window=1,
        cap=1,
        rul_unit="cycles",
        condition_metrics=("x", "y"),
        n_conditions=2,
    )
    assert prep.conditions(rows).tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    np.testing.assert_allclose(
        prep.scale(np.array([[105.0, 0.0, 0.0], [520.0, 40.0, 1.0]])), [[0.5], [0.5]]
    )
    again = Preprocessing.from_json(prep.to_json())
    assert again == prep


def test_kmeans_finds_separated_clusters() -> None:
    points = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0], [-9.0, 5.0]])
    centres = sorted(map(tuple, np.round(kmeans(points, 3), 2)))
    assert centres == [(-9.0, 5.0), (0.05, 0.0), (10.05, 10.0)]


def test_windows_and_targets_of_an_engine() -> None:
    scaled = np.arange(10, dtype=np.float32).reshape(5, 2)  # 5 cycles, 2 features
    x = windows(scaled, 3)
    assert x.shape == (3, 3, 2)
    np.testing.assert_array_equal(x[0], scaled[0:3])
    np.testing.assert_array_equal(x[-1], scaled[2:5])
    remaining = np.array([200.0, 130.0, 126.0, 1.0, 0.0])
    np.testing.assert_array_equal(targets(remaining, 3, 125.0), [125.0, 1.0, 0.0])


def test_short_engine_is_padded_with_its_first_row() -> None:
    scaled = np.array([[1.0], [2.0]], dtype=np.float32)
    np.testing.assert_array_equal(pad(scaled, 4), [[1.0], [1.0], [1.0], [2.0]])
    np.testing.assert_array_equal(windows(scaled, 4), [[[1.0], [1.0], [1.0], [2.0]]])
    np.testing.assert_array_equal(targets(np.array([5.0, 4.0]), 4, 125.0), [4.0])


def test_read_cmapss_files() -> None:
    engines = read_engines(DATA / "test_FD001_few.txt")
    assert [e.unit for e in engines] == [1, 22, 39, 85]
    assert [len(e) for e in engines] == [31, 39, 37, 34]
    first = engines[0]
    assert first.cycles[0] == 1 and first.cycles[-1] == 31
    assert first.column(("setting_3", "s_2"))[0].tolist() == [100.0, 643.02]
    assert len(COLUMNS) == 24 and len(INFORMATIVE) == 14
    assert read_rul(DATA / "RUL_FD001_few.txt").tolist() == [112.0, 111.0, 142.0, 118.0]
    assert len(fingerprint([DATA / "RUL_FD001_few.txt"])) == 64


def test_dataset_follows_the_protocol() -> None:
    train = read_engines(DATA / "train_FD001_few.txt")
    test = read_engines(DATA / "test_FD001_few.txt")
    data = dataset_from_engines(train, test, read_rul(DATA / "RUL_FD001_few.txt"), context=())
    assert operating_conditions(train) == 1
    assert data.preprocessing.condition_metrics == ()
    # every cycle from the 30th on is a window: (128 - 29) + (135 - 29)
    assert data.train_x.shape == (99 + 106, 30, 14)
    assert data.train_y.max() == 105.0 and data.train_y.min() == 0.0  # 135 - 30 cycles left
    assert data.test_x.shape == (4, 30, 14)
    # training features span [0, 1] exactly (min-max fitted on them)
    assert data.train_x.min() == 0.0 and data.train_x.max() == 1.0
    np.testing.assert_array_equal(data.test_y, [112.0, 111.0, 125.0, 118.0])  # capped
    np.testing.assert_array_equal(data.test_y_uncapped, [112.0, 111.0, 142.0, 118.0])  # type: ignore[arg-type]


def test_history_inputs_hand_computed() -> None:
    prep = Preprocessing(
        ("a", "b"), 2, 125.0, "cycles", minimum=[[0.0, 10.0]], maximum=[[10.0, 20.0]],
        context=("age", "drift"), baseline_rows=2, age_scale=4.0,
    )  # fmt: skip
    assert prep.inputs == 5  # a, b, age, drift a, drift b
    rows = np.array([[0.0, 10.0], [2.0, 12.0], [4.0, 20.0], [10.0, 15.0]])
    # scaled: (0, 0), (.2, .2), (.4, 1), (1, .5); baseline: mean of the first 2 = (.1, .1)
    np.testing.assert_allclose(
        prep.history(rows),
        [
            [0.0, 0.0, 0.25, -0.1, -0.1],
            [0.2, 0.2, 0.50, 0.1, 0.1],
            [0.4, 1.0, 0.75, 0.3, 0.9],
            [1.0, 0.5, 1.00, 0.9, 0.4],
        ],
        rtol=1e-6,
    )
    # the same rows from a later window: its first row is the device's 3rd reading
    np.testing.assert_allclose(
        prep.with_context(prep.scale(rows[2:]), 3, prep.baseline(rows)), prep.history(rows)[2:]
    )
    age_only = Preprocessing(
        ("a", "b"),
        2,
        125.0,
        "cycles",
        minimum=[[0.0, 10.0]],
        maximum=[[10.0, 20.0]],
        context=("age",),
    )
    assert age_only.inputs == 3 and age_only.history(rows).shape == (4, 3)
    plain = Preprocessing(
        ("a", "b"), 2, 125.0, "cycles", minimum=[[0.0, 10.0]], maximum=[[10.0, 20.0]]
    )
    np.testing.assert_array_equal(plain.history(rows), plain.scale(rows))


def test_context_round_trips_and_old_models_have_none() -> None:
    prep = fit(
        np.array([[0.0], [1.0]]), ("a",), window=1, cap=1, rul_unit="cycles", context=("drift",)
    )
    assert Preprocessing.from_json(prep.to_json()) == prep
    written_before = {
        k: v
        for k, v in prep.to_json().items()
        if k not in ("context", "baseline_rows", "age_scale")
    }
    assert Preprocessing.from_json(written_before).context == ()
    with pytest.raises(
        ConfigError, match=r"preprocessing\.context: unknown cycle; use any of age, drift"
    ):
        Preprocessing(("a",), 1, 1.0, "cycles", context=("cycle",))


def test_dataset_with_history_inputs() -> None:
    train = read_engines(DATA / "train_FD001_few.txt")
    test = read_engines(DATA / "test_FD001_few.txt")
    data = dataset_from_engines(train, test, read_rul(DATA / "RUL_FD001_few.txt"))
    assert data.preprocessing.context == ("age", "drift")
    assert data.train_x.shape == (99 + 106, 30, 29) and data.test_x.shape == (4, 30, 29)
    # the first window of the first engine ends at cycle 30; the test windows at each engine's end
    np.testing.assert_allclose(data.train_x[0, :, 14], np.arange(1, 31) / 200.0, rtol=1e-6)
    np.testing.assert_allclose(
        data.test_x[:, -1, 14], [31 / 200, 39 / 200, 37 / 200, 34 / 200], rtol=1e-6
    )
    # drift: each scaled feature minus its mean over the engine's first 20 cycles
    scaled = data.preprocessing.scale(train[0].column(INFORMATIVE))
    np.testing.assert_allclose(
        data.train_x[0, :, 15:], scaled[:30] - scaled[:20].mean(axis=0), atol=1e-6
    )
