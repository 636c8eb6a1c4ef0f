"""Training to the C-MAPSS protocol: windows from every training cycle, evaluated on the last
window of each test engine, one model per seed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sentio_iot.streams.rul import model as rul_model
from sentio_iot.streams.rul.cmapss import (
    INFORMATIVE,
    SETTINGS,
    Engine,
    nasa_score,
    read_engines,
    read_rul,
    rmse,
)
from sentio_iot.streams.rul.preprocessing import Preprocessing, fit, pad, targets, windows

log = logging.getLogger(__name__)

WINDOW = 30
CAP = 125.0
HISTORY = ("age", "drift")  # the C-MAPSS models' history inputs (preprocessing.CONTEXTS)
VALIDATION_SHARE = 0.2  # of the training engines, held out for early stopping


@dataclass
class Dataset:
    """Windows ready for Keras: training windows with their engine, and one window per test engine."""

    preprocessing: Preprocessing
    train_x: NDArray[np.float32]
    train_y: NDArray[np.float64]
    train_engine: NDArray[np.int64]
    test_x: NDArray[np.float32]
    test_y: NDArray[np.float64]  # true RUL capped like the training target (the usual protocol)
    test_y_uncapped: NDArray[np.float64] | None = None


@dataclass
class SeedResult:
    seed: int
    model: Any
    rmse: float
    score: float
    validation_rmse: float
    epochs: int
    seconds: float
    rmse_uncapped: float | None = None


def operating_conditions(engines: Sequence[Engine]) -> int:
    """How many flight conditions the settings show (1 for FD001, 6 for FD002)."""
    settings = np.concatenate([e.column(SETTINGS) for e in engines])
    decimals = (0, 2, 0)  # altitude in kft, Mach number, throttle angle
    rounded = np.stack([np.round(settings[:, j], d) for j, d in enumerate(decimals)], axis=1)
    rounded = rounded + 0.0  # folds -0.0 into 0.0
    return len({tuple(row) for row in rounded.tolist()})


def rows_of(engine: Engine, preprocessing: Preprocessing) -> NDArray[np.float64]:
    return engine.column(preprocessing.metrics)


def dataset_from_engines(
    train: Sequence[Engine],
    test: Sequence[Engine],
    test_rul: NDArray[np.float64],
    *,
    window: int = WINDOW,
    cap: float = CAP,
    context: Sequence[str] = HISTORY,
) -> Dataset:
    """Fit the scaler on ``train``; every training window; the last window of each test engine.

    ``context``: the history inputs beside each window (age and drift, see preprocessing);
    ``()`` gives the window-only protocol of the published figures.

    The test engines' true RUL is capped like the training target, as the published figures
    do (a healthy engine shows no sign of how far beyond the cap its life goes);
    ``test_y_uncapped`` keeps the file's values for the stricter figure.
    """
    conditions = operating_conditions(train)
    condition_metrics = SETTINGS if conditions > 1 else ()
    prep = fit(
        np.concatenate([e.column((*INFORMATIVE, *condition_metrics)) for e in train]),
        INFORMATIVE,
        window=window,
        cap=cap,
        rul_unit="cycles",
        condition_metrics=condition_metrics,
        n_conditions=conditions,
        context=context,
    )
    xs, ys, owners = [], [], []
    for number, engine in enumerate(train):
        x = windows(prep.history(rows_of(engine, prep)), window)
        remaining = (engine.cycles[-1] - engine.cycles).astype(np.float64)
        xs.append(x)
        ys.append(targets(remaining, window, cap))
        owners.append(np.full(len(x), number, dtype=np.int64))
    test_x = np.stack([pad(prep.history(rows_of(e, prep)), window) for e in test])
    return Dataset(
        prep,
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(owners),
        test_x,
        np.minimum(np.asarray(test_rul, dtype=np.float64), cap),
        np.asarray(test_rul, dtype=np.float64),
    )


def load_dataset(train: Path, test: Path, rul: Path, **kwargs: Any) -> Dataset:
    return dataset_from_engines(read_engines(train), read_engines(test), read_rul(rul), **kwargs)


def split_engines(
    engine: NDArray[np.int64], seed: int, share: float = VALIDATION_SHARE
) -> NDArray[np.bool_]:
    """A mask of the windows whose engine is held out for validation (whole engines, by seed)."""
    engines = np.unique(engine)
    count = max(1, round(share * len(engines)))
    held_out = np.random.default_rng(seed).choice(engines, size=count, replace=False)
    return np.isin(engine, held_out)


def train_seed(
    data: Dataset,
    seed: int,
    options: rul_model.TrainingOptions,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> SeedResult:
    """Train one model and evaluate it on the test engines."""
    began = time.perf_counter()
    held_out = split_engines(data.train_engine, seed)
    prep = data.preprocessing
    network = rul_model.build(prep.window, prep.inputs, prep.cap, seed, options)
    epochs = rul_model.fit(
        network,
        (data.train_x[~held_out], data.train_y[~held_out]),
        (data.train_x[held_out], data.train_y[held_out]),
        options,
        on_epoch,
    )
    validation = rul_model.predict(network, data.train_x[held_out])
    predicted = rul_model.predict(network, data.test_x)
    return SeedResult(
        seed,
        network,
        rmse(predicted, data.test_y),
        nasa_score(predicted, data.test_y),
        rmse(validation, data.train_y[held_out]),
        epochs,
        time.perf_counter() - began,
        rmse(predicted, data.test_y_uncapped) if data.test_y_uncapped is not None else None,
    )
