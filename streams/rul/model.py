"""The RUL network: a small dilated 1D-CNN (a TCN without the frills), in TensorFlow/Keras.

Four causal convolutions with dilations 1, 2, 4, 8 and residual connections see the whole
window; a dense head maps it to the capped RUL. The last layer rescales by the cap, so the
model outputs RUL in the model's unit directly and the stream needs no post-processing.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)


def load_keras() -> Any:
    """Keras, imported on first use (it takes seconds) and untyped (no stubs exist)."""
    return importlib.import_module("keras")


@contextmanager
def numpy2_quirks() -> Iterator[None]:
    """Silence Keras 3's ``np.array(variable)``, which NumPy 2 flags as deprecated (harmless)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="__array__ implementation doesn't accept a copy keyword",
            category=DeprecationWarning,
        )
        yield


@dataclass(frozen=True)
class TrainingOptions:
    """How one model is fitted; the defaults are what the C-MAPSS benchmark uses."""

    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 1e-3
    patience: int = 10  # epochs without a better validation loss before stopping
    min_epochs: int = 20  # epochs before early stopping may stop (or pick the best weights)
    filters: int = 32
    dense: int = 64
    dropout: float = 0.2


def build(window: int, n_features: int, cap: float, seed: int, options: TrainingOptions) -> Any:
    """A fresh, compiled network for windows of ``window`` rows of ``n_features`` features."""
    keras = load_keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((window, n_features), name="window")
    hidden = keras.layers.Conv1D(options.filters, 3, padding="causal", activation="relu")(inputs)
    for dilation in (2, 4, 8):
        step = keras.layers.Conv1D(
            options.filters, 3, padding="causal", dilation_rate=dilation, activation="relu"
        )(hidden)
        hidden = keras.layers.Add()([hidden, step])
    hidden = keras.layers.Flatten()(hidden)
    hidden = keras.layers.Dense(options.dense, activation="relu")(hidden)
    hidden = keras.layers.Dropout(options.dropout)(hidden)
    fraction = keras.layers.Dense(1)(hidden)
    rul = keras.layers.Rescaling(cap, name="rul")(fraction)
    model = keras.Model(inputs, rul, name="rul_tcn")
    model.compile(optimizer=keras.optimizers.Adam(options.learning_rate), loss="mse")
    return model


def fit(
    model: Any,
    train: tuple[NDArray[np.float32], NDArray[np.float64]],
    validation: tuple[NDArray[np.float32], NDArray[np.float64]],
    options: TrainingOptions,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> int:
    """Fit with early stopping on the validation engines; return the epochs run."""
    keras = load_keras()
    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(
            patience=options.patience,
            restore_best_weights=True,
            monitor="val_loss",
            start_from_epoch=options.min_epochs,
        ),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, options.patience // 3)),
    ]
    if on_epoch is not None:
        report = on_epoch
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: report(epoch + 1, dict(logs or {}))
            )
        )
    with numpy2_quirks():
        history = model.fit(
            train[0],
            train[1],
            validation_data=validation,
            epochs=options.epochs,
            batch_size=options.batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=0,
        )
    return len(history.history["loss"])


def predict(model: Any, x: NDArray[np.float32]) -> NDArray[np.float64]:
    """RUL for each window in one call (no Keras progress bar), never below 0."""
    if len(x) == 0:
        return np.zeros(0)
    out = np.asarray(model(x, training=False), dtype=np.float64).reshape(len(x), -1)
    rul: NDArray[np.float64] = np.maximum(out.mean(axis=1), 0.0)
    return rul  # no negative life; an ensemble's mean


def count_parameters(model: Any) -> int:
    return int(model.count_params())
