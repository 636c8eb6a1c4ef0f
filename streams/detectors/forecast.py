"""Forecast: a small neural network (TensorFlow/Keras) predicts each reading; surprise = error.

The detector keeps the last ``history`` readings. After ``warmup`` readings, and then every
``retrain_every`` readings, it trains a multilayer perceptron (``lags`` past readings ->
``hidden`` ReLU units -> next reading, on values standardised by the history's mean and
standard deviation) with ``steps`` full-batch Adam steps on every window of the history,
starting from its previous weights. Between trainings the forecast runs in NumPy with the trained weights (a
TensorFlow call per reading would cost a millisecond; this costs microseconds).

The surprise of a reading is ``z = |error - mean| / std`` against exponentially weighted
moments of past forecast errors (half-life ``error_half_life``), and the score is
``z² / (z² + threshold²)`` (``band_score``: 0.5 at ``z = threshold``) times
``(1 - tail)^rarity_power``, ``tail`` the share of past error z at least as large (as in
``surprise``; off by default: it lowered this detector's NAB score), then ``OnsetGate`` keeps one report per episode (see ``onset``).

Deterministic: initial weights come from a NumPy generator seeded with ``seed``, training
is full-batch and its optimiser starts afresh each time, so a detector restored from
``to_state()`` trains and scores exactly like the one that was saved. TensorFlow is
imported on first training only; the trainer (one Keras model per shape) is shared by all
detectors of a process, which only lend it their weights.
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from sentio_iot.streams.detectors.base import COLD, Detector, DetectorParams, Score, is_reading
from sentio_iot.streams.detectors.calibration import RankCalibrator
from sentio_iot.streams.detectors.moments import EwMoments, alpha_for, band_score
from sentio_iot.streams.detectors.onset import OnsetGate, damp_field, fire_field, quiet_field

BAND_Z = 4.0
Weights = list[npt.NDArray[np.float64]]


class ForecastParams(DetectorParams):
    """Parameters of the neural forecast detector."""

    lags: int = Field(24, ge=1, description="Past readings the network sees.")
    hidden: int = Field(16, ge=1, description="ReLU units in the hidden layer.")
    history: int = Field(2000, ge=50, description="Readings kept to train on.")
    warmup: int = Field(
        200, ge=10, description="Readings before the first training; they score 0.0."
    )
    retrain_every: int = Field(1000, ge=1, description="Readings between trainings.")
    steps: int = Field(
        200,
        ge=1,
        description="Full-batch Adam steps per training (on every window of the history).",
    )
    learning_rate: float = Field(0.01, gt=0, description="Adam's step size.")
    error_half_life: float = Field(
        300.0, gt=0, description="Half-life of the forecast error moments, in readings."
    )
    threshold: float = Field(
        6.0, gt=0, description="Forecast error z (against past errors) that scores 0.5."
    )
    rarity_power: float = Field(
        0.0,
        ge=0,
        description="Score x (1 - tail)^power, tail = share of the last `rarity_history` z at least as high (0: off).",
    )
    rarity_history: int = Field(
        8000, ge=10, description="Past error z a new one is ranked against."
    )
    seed: int = Field(0, description="Seed of the initial weights.")
    fire: float = fire_field(0.2)
    quiet: int = quiet_field(150)
    damp: float = damp_field()
    min_scale: float = Field(
        1e-9,
        gt=0,
        description="Smallest standard deviation; keeps constant series from dividing by 0.",
    )


class ForecastDetector(Detector[ForecastParams]):
    """Forecast error of a periodically retrained Keras MLP, reported at the onset."""

    name = "forecast"
    version = 1
    alert_threshold = 0.85  # its NAB low-FP corpus threshold (0.849)
    params_model = ForecastParams

    def __init__(self, params: ForecastParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._history: deque[float] = deque(maxlen=p.history)
        self._weights: Weights = _initial_weights(p.lags, p.hidden, p.seed)
        self._norm = (0.0, 1.0)  # mean and standard deviation of the training history
        self._trained = 0  # trainings so far
        self._since_training = 0
        self._errors = EwMoments(alpha_for(p.error_half_life))
        # built only when rarity_power > 0 (weigh() with power 0 neither reads nor keeps)
        self._rarity = RankCalibrator(p.rarity_history) if p.rarity_power else None
        self._gate = OnsetGate(p.fire, p.quiet, p.damp)
        self._last = COLD

    def update(self, ts_us: int, value: float) -> Score:
        if not is_reading(value):
            return self._last
        p = self.params
        history = self._history
        score = COLD
        if self._trained and len(history) >= p.lags:
            expected = self._forecast()
            error = value - expected
            z = self._errors.z(error, p.min_scale)
            band = BAND_Z * max(self._errors.std, p.min_scale)
            self._errors.add(error)
            surprise = band_score(z, p.threshold)
            if self._rarity is not None:
                surprise = self._rarity.weigh(surprise, z, p.rarity_power)
            gated = self._gate.gate(surprise)
            score = Score(
                min(1.0, max(0.0, gated)),
                expected=expected,
                lower=expected - band,
                upper=expected + band,
                warm=True,
            )
        history.append(value)
        self._since_training += 1
        due = p.warmup if not self._trained else p.retrain_every
        if self._since_training >= due and len(history) > p.lags + 1:
            self._train()
        self._last = score
        return score

    def _forecast(self) -> float:
        p = self.params
        mean, std = self._norm
        window = np.fromiter(
            (self._history[i] for i in range(len(self._history) - p.lags, len(self._history))),
            dtype=np.float64,
            count=p.lags,
        )
        w1, b1, w2, b2 = self._weights
        hidden = np.maximum((window - mean) / std @ w1 + b1, 0.0)
        return float(hidden @ w2[:, 0] + b2[0]) * std + mean

    def _train(self) -> None:
        p = self.params
        values = np.asarray(self._history, dtype=np.float64)
        mean, std = float(values.mean()), float(values.std())
        std = std if std > p.min_scale else 1.0
        scaled = (values - mean) / std
        windows = np.lib.stride_tricks.sliding_window_view(scaled, p.lags + 1)
        trainer = _trainer(p.lags, p.hidden, p.learning_rate)
        self._weights = trainer.fit(self._weights, windows[:, :-1], windows[:, -1:], p)
        self._norm = (mean, std)
        self._trained += 1
        self._since_training = 0

    def _export_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "history": list(self._history),
            "weights": [w.tolist() for w in self._weights],
            "norm": list(self._norm),
            "trained": self._trained,
            "since_training": self._since_training,
            "errors": self._errors.to_list(),
            "gate": self._gate.to_list(),
            "last": self._last.to_dict(),
        }
        if self._rarity is not None:  # rarity_power > 0 (until 2026-12-07 written empty otherwise)
            state["rarity"] = self._rarity.to_list()
        return state

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        p = self.params
        self._history = deque((float(v) for v in state["history"]), maxlen=p.history)
        self._weights = [np.asarray(w, dtype=np.float64) for w in state["weights"]]
        shapes = [w.shape for w in self._weights]
        if shapes != [(p.lags, p.hidden), (p.hidden,), (p.hidden, 1), (1,)]:
            raise ValueError(f"weights of shapes {shapes} do not fit the params")
        mean, std = state["norm"]
        self._norm = (float(mean), float(std))
        self._trained = int(state["trained"])
        self._since_training = int(state["since_training"])
        self._errors = EwMoments.from_list(alpha_for(p.error_half_life), state["errors"])
        if self._rarity is not None:
            self._rarity = RankCalibrator(p.rarity_history, [float(v) for v in state["rarity"]])
        self._gate = OnsetGate.from_list(p.fire, p.quiet, p.damp, state["gate"])
        self._last = Score.from_dict(state["last"])


def _initial_weights(lags: int, hidden: int, seed: int) -> Weights:
    """He-initialised weights, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    return [
        rng.normal(0.0, math.sqrt(2.0 / lags), (lags, hidden)),
        np.zeros(hidden),
        rng.normal(0.0, math.sqrt(1.0 / hidden), (hidden, 1)),
        np.zeros(1),
    ]


class _Trainer:
    """A compiled full-batch Adam loop for one MLP shape, lent to every detector of that shape.

    The whole training (``steps`` Adam steps) is one ``tf.function`` call: Keras' ``fit``
    costs milliseconds per batch in Python overhead, this costs microseconds per step.
    """

    def __init__(self, lags: int, hidden: int, learning_rate: float) -> None:
        # imported here: scoring without training needs no TensorFlow (and it has no stubs)
        tf: Any = importlib.import_module("tensorflow")

        shapes = [(lags, hidden), (hidden,), (hidden, 1), (1,)]
        self._variables = [tf.Variable(tf.zeros(shape)) for shape in shapes]
        moments = [tf.Variable(tf.zeros(shape)) for shape in shapes + shapes]
        first, second = moments[:4], moments[4:]
        beta1, beta2, epsilon = 0.9, 0.999, 1e-7
        variables = self._variables

        def train(x: Any, y: Any, steps: Any) -> Any:
            for moment in moments:  # a fresh optimiser each training: no memory of others
                moment.assign(tf.zeros_like(moment))
            loss = tf.constant(0.0)
            for step in tf.range(1, steps + 1):
                with tf.GradientTape() as tape:
                    w1, b1, w2, b2 = variables
                    predicted = tf.nn.relu(x @ w1 + b1) @ w2 + b2
                    loss = tf.reduce_mean(tf.square(predicted - y))
                grads = tape.gradient(loss, variables)
                t = tf.cast(step, tf.float32)
                rate = learning_rate * tf.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                for var, grad, m, v in zip(variables, grads, first, second, strict=True):
                    m.assign(beta1 * m + (1.0 - beta1) * grad)
                    v.assign(beta2 * v + (1.0 - beta2) * tf.square(grad))
                    var.assign_sub(rate * m / (tf.sqrt(v) + epsilon))
            return loss

        self._train = tf.function(
            train,
            input_signature=[
                tf.TensorSpec([None, lags], tf.float32),
                tf.TensorSpec([None, 1], tf.float32),
                tf.TensorSpec([], tf.int32),
            ],
            reduce_retracing=True,
        )

    def fit(
        self,
        weights: Weights,
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        params: ForecastParams,
    ) -> Weights:
        for variable, value in zip(self._variables, weights, strict=True):
            variable.assign(value.astype(np.float32))
        self._train(x.astype(np.float32), y.astype(np.float32), np.int32(params.steps))
        return [np.asarray(v.numpy(), dtype=np.float64) for v in self._variables]


@cache
def _trainer(lags: int, hidden: int, learning_rate: float) -> _Trainer:
    return _Trainer(lags, hidden, learning_rate)
