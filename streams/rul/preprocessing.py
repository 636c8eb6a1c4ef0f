"""From raw readings to model input: operating conditions, min-max scaling, history, windows.

``Preprocessing`` is what a trained model needs beside its weights; it is stored as JSON
with the model, so the stream scales readings exactly as training did. Scaling is fitted on
the training rows only, separately per operating condition when the model has condition
metrics (C-MAPSS FD002: six flight conditions found by clustering the three settings).

A model may also read two inputs from the device's history beside its window (``context``):
``age``, how many readings the device has given so far (the cycle number of a C-MAPSS
engine), and ``drift``, how far each scaled feature has moved from its mean over the
device's first ``baseline_rows`` readings. Both assume the history starts with the device's
life (true of C-MAPSS engines and of a machine monitored since commissioning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sentio_iot.errors import ConfigError

Array = NDArray[np.float64]

CONTEXTS = ("age", "drift")  # history inputs a model may read beside its window, in input order


@dataclass(frozen=True)
class Preprocessing:
    """Features, conditions and scaler of one model; ``rows`` are ``features + condition_metrics``."""

    features: tuple[str, ...]
    window: int
    cap: float
    rul_unit: str
    condition_metrics: tuple[str, ...] = ()
    centroids: list[list[float]] = field(default_factory=list)  # one per condition
    condition_scale: list[float] = field(default_factory=list)  # per condition metric
    minimum: list[list[float]] = field(default_factory=list)  # per condition, per feature
    maximum: list[list[float]] = field(default_factory=list)
    context: tuple[str, ...] = ()  # of CONTEXTS
    baseline_rows: int = 20  # first readings whose mean is the drift baseline
    age_scale: float = 200.0  # readings; the age input is count / age_scale

    def __post_init__(self) -> None:
        unknown = [name for name in self.context if name not in CONTEXTS]
        if unknown:
            raise ConfigError(
                f"preprocessing.context: unknown {', '.join(unknown)}; use any of {', '.join(CONTEXTS)}"
            )

    @property
    def inputs(self) -> int:
        """Model inputs per row: the features, then 1 for age, then the features again for drift."""
        drift = len(self.features) if "drift" in self.context else 0
        return len(self.features) + ("age" in self.context) + drift

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric a device must report for this model, in row order."""
        return (*self.features, *self.condition_metrics)

    def conditions(self, rows: Array) -> NDArray[np.int64]:
        """The operating condition of each row: its nearest centroid (0 without conditions)."""
        if not self.condition_metrics:
            return np.zeros(len(rows), dtype=np.int64)
        settings = rows[:, len(self.features) :] / np.asarray(self.condition_scale)
        centroids = np.asarray(self.centroids) / np.asarray(self.condition_scale)
        distance = ((settings[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        nearest: NDArray[np.int64] = np.argmin(distance, axis=1).astype(np.int64)
        return nearest

    def scale(self, rows: Array) -> NDArray[np.float32]:
        """Features scaled to about [0, 1] by the min and max of their condition in training."""
        condition = self.conditions(rows)
        low = np.asarray(self.minimum)[condition]
        span = np.asarray(self.maximum)[condition] - low
        span = np.where(span > 0, span, 1.0)  # a constant feature scales to 0, not inf
        scaled: NDArray[np.float32] = ((rows[:, : len(self.features)] - low) / span).astype(
            np.float32
        )
        return scaled

    def with_context(
        self, scaled: NDArray[np.float32], first_age: int, baseline: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        """Model rows from scaled rows: ``first_age`` is the first row's reading count (from 1),
        ``baseline`` the mean scaled row of the device's first ``baseline_rows`` readings.
        """
        if not self.context:
            return scaled
        columns = [scaled]
        if "age" in self.context:
            ages = np.arange(first_age, first_age + len(scaled), dtype=np.float32)
            columns.append((ages / np.float32(self.age_scale))[:, None])
        if "drift" in self.context:
            columns.append(scaled - baseline.astype(np.float32))
        rows: NDArray[np.float32] = np.concatenate(columns, axis=1).astype(np.float32)
        return rows

    def baseline(self, first_rows: Array) -> NDArray[np.float32]:
        """The drift baseline: the mean scaled row of (up to) the first ``baseline_rows`` rows."""
        mean: NDArray[np.float32] = self.scale(first_rows[: self.baseline_rows]).mean(axis=0)
        return mean

    def history(self, rows: Array) -> NDArray[np.float32]:
        """Model rows for a device's whole history, from its first reading on (offline)."""
        return self.with_context(self.scale(rows), 1, self.baseline(rows))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessing:
        data = dict(data)
        data["features"] = tuple(data["features"])
        data["condition_metrics"] = tuple(data.get("condition_metrics", ()))
        data["context"] = tuple(data.get("context", ()))
        return cls(**data)


def fit(
    rows: Array,
    features: Sequence[str],
    *,
    window: int,
    cap: float,
    rul_unit: str,
    condition_metrics: Sequence[str] = (),
    n_conditions: int = 1,
    tail: float = 0.0,
    context: Sequence[str] = (),
) -> Preprocessing:
    """Fit conditions and per-condition min/max on training ``rows`` (features + conditions).

    ``context`` names the history inputs the model reads beside its window (``CONTEXTS``).

    ``tail`` > 0 takes the ``tail`` and ``1 - tail`` quantiles instead of min and max, so a
    few injected spikes do not squash the scale of everything else.
    """
    features, condition_metrics = tuple(features), tuple(condition_metrics)
    draft = Preprocessing(features, window, cap, rul_unit)
    if condition_metrics and n_conditions > 1:
        settings = rows[:, len(features) :]
        scale = settings.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        centroids = kmeans(settings / scale, n_conditions) * scale
        draft = Preprocessing(
            features,
            window,
            cap,
            rul_unit,
            condition_metrics,
            centroids.tolist(),
            scale.tolist(),
        )
    condition = draft.conditions(rows)
    count = max(1, len(draft.centroids))
    values = rows[:, : len(features)]
    low = [np.quantile(values[condition == c], tail, axis=0).tolist() for c in range(count)]
    high = [np.quantile(values[condition == c], 1 - tail, axis=0).tolist() for c in range(count)]
    return Preprocessing(
        features,
        window,
        cap,
        rul_unit,
        draft.condition_metrics,
        draft.centroids,
        draft.condition_scale,
        low,
        high,
        tuple(context),
    )


def kmeans(points: Array, k: int, iterations: int = 50) -> Array:
    """Plain k-means, seeded farthest-first so it is deterministic; returns the centroids."""
    centroids = [points[0]]
    for _ in range(1, k):
        distance = np.min([((points - c) ** 2).sum(axis=1) for c in centroids], axis=0)
        centroids.append(points[int(np.argmax(distance))])
    centre = np.asarray(centroids, dtype=np.float64)
    for _ in range(iterations):
        nearest = np.argmin(((points[:, None, :] - centre[None]) ** 2).sum(axis=2), axis=1)
        moved = np.asarray(
            [
                points[nearest == c].mean(axis=0) if np.any(nearest == c) else centre[c]
                for c in range(k)
            ]
        )
        if np.allclose(moved, centre):
            break
        centre = moved
    return centre


def pad(rows: NDArray[np.float32], window: int) -> NDArray[np.float32]:
    """The last ``window`` rows; a shorter history is padded by repeating its first row."""
    if len(rows) >= window:
        return rows[len(rows) - window :]
    return np.concatenate([np.repeat(rows[:1], window - len(rows), axis=0), rows])


def windows(scaled: NDArray[np.float32], window: int) -> NDArray[np.float32]:
    """Every window of one engine's scaled rows, one per cycle from the ``window``-th on.

    An engine shorter than ``window`` gives one padded window.
    """
    if len(scaled) < window:
        return pad(scaled, window)[None]
    view = np.lib.stride_tricks.sliding_window_view(scaled, window, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def targets(remaining: Array, window: int, cap: float) -> Array:
    """The capped RUL at the last row of each window of ``windows`` (piecewise-linear target)."""
    ends = remaining[window - 1 :] if len(remaining) >= window else remaining[-1:]
    return np.minimum(ends, cap)
