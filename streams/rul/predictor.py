"""Serving: a sliding window per device, and one batched model call for many devices.

Pure (no Kafka): the RUL agent keeps a ``DeviceWindow`` per device in a table (its state is
the last ``window`` rows, the reading count and the first ``baseline_rows`` rows, plain
lists, so it serialises as JSON), feeds each reading in with ``observe``, and hands the
devices that are due to ``predict_batch``, which scales their windows and calls the network
once for all of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sentio_iot.streams.rul.preprocessing import pad
from sentio_iot.streams.rul.store import LoadedModel


@dataclass
class DeviceWindow:
    """The recent rows of one device for one model: ``rows[i]`` lines up with the model's metrics."""

    model_name: str
    rows: list[list[float]] = field(default_factory=list)
    ts_us: int = 0  # of the latest row
    labels: dict[str, str] = field(default_factory=dict)
    predicted_us: int | None = None  # event time of the reading that last made it due
    count: int = 0  # readings observed for this model: the device's age
    first: list[list[float]] = field(default_factory=list)  # the first rows: the drift baseline

    def to_state(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "rows": self.rows,
            "ts_us": self.ts_us,
            "labels": self.labels,
            "predicted_us": self.predicted_us,
            "count": self.count,
            "first": self.first,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> DeviceWindow:
        rows = [list(map(float, row)) for row in state["rows"]]
        return cls(
            state["model_name"],
            rows,
            int(state["ts_us"]),
            dict(state["labels"]),
            state.get("predicted_us"),
            int(state.get("count", len(rows))),  # state written before ages were kept
            [list(map(float, row)) for row in state.get("first", [])],
        )

    def due(self, min_interval_us: int) -> bool:
        """Whether enough event time has passed since the reading that last made it due."""
        return self.predicted_us is None or self.ts_us - self.predicted_us >= min_interval_us


class RulPredictor:
    """One loaded model version: keeps device windows to its shape and predicts in batches."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.metrics = model.preprocessing.metrics
        self.window = model.preprocessing.window
        self._infer = compiled(model.network)

    def warm_up(self) -> None:
        """Build the inference graph now (a batch of one), not in the first batch."""
        shape = _single_input_shape(self.model.network)
        if shape is not None:
            self._infer(np.zeros((1, *shape[1:]), dtype=np.float32))

    def observe(
        self,
        window: DeviceWindow,
        values: Mapping[str, float | None],
        ts_us: int,
        labels: Mapping[str, str],
    ) -> bool:
        """Append a reading's row; False (window unchanged) when a model metric is missing."""
        row = [values.get(name) for name in self.metrics]
        if any(v is None or not np.isfinite(v) for v in row):
            return False
        window.rows.append([float(v) for v in row if v is not None])
        del window.rows[: max(0, len(window.rows) - self.window)]
        window.count += 1
        if len(window.first) < self.model.preprocessing.baseline_rows:
            window.first.append(window.rows[-1])  # kept for every model: a promoted one may drift
        window.ts_us = ts_us
        window.labels = dict(labels)
        return True

    def inputs(self, windows: Sequence[DeviceWindow]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The model input for each window: scaled, padded to ``window`` rows like the offline protocol."""
        return np.stack([pad(self.model_rows(w), self.window) for w in windows])

    def model_rows(self, window: DeviceWindow) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The window's rows as the model reads them: scaled, with the history inputs if any.

        Equal to the last rows of ``Preprocessing.history`` over the device's whole history.
        """
        prep = self.model.preprocessing
        rows = np.asarray(window.rows, dtype=np.float64)
        if not prep.context:
            return prep.scale(rows)
        first = np.asarray(window.first, dtype=np.float64) if window.first else rows
        age = max(window.count, len(rows)) - len(rows) + 1
        return prep.with_context(prep.scale(rows), age, prep.baseline(first))

    def predict_batch(self, devices: Sequence[tuple[str, DeviceWindow]]) -> list[dict[str, Any]]:
        """One ``model(x)`` call for every device; RulPrediction records in the same order."""
        devices = [(d, w) for d, w in devices if w.rows]
        if not devices:
            return []
        x = self.inputs([w for _, w in devices])
        out = np.asarray(self._infer(x), dtype=np.float64).reshape(len(x), -1)
        prep = self.model.preprocessing
        records = []
        for (device_id, window), estimates in zip(devices, out, strict=True):
            rul = max(0.0, float(estimates.mean()))
            spread = len(estimates) > 1  # an ensemble's members give an interval
            records.append(
                {
                    "device_id": device_id,
                    "ts": window.ts_us,
                    "rul": rul,
                    "rul_unit": prep.rul_unit,
                    "lower": max(0.0, float(estimates.min())) if spread else None,
                    "upper": float(estimates.max()) if spread else None,
                    "model_name": self.model.name,
                    "model_version": str(self.model.version),
                    "window_size": self.window,
                    "labels": dict(window.labels),
                }
            )
        return records


def _single_input_shape(network: Any) -> tuple[int | None, ...] | None:
    shape = getattr(network, "input_shape", None)
    if (
        isinstance(shape, tuple)
        and shape
        and shape[0] is None
        and all(d is None or isinstance(d, int) for d in shape)
    ):
        return shape
    return None


def compiled(network: Any) -> Callable[[np.ndarray[Any, Any]], Any]:
    """``network(x, training=False)`` as one TensorFlow graph for every batch size.

    Keras 3 runs a model called eagerly layer by layer in Python: 17-30 ms a call for the
    shipped pump model, whatever the batch size, against 1.7-3.4 ms as a ``tf.function``
    with the same outputs (docs/benchmarks.md); at 10,000 pumps the eager calls were a fifth
    of the stream worker's time. One input signature with any batch size: one trace, not
    one per batch shape. A model with several inputs is called as it is.
    """
    shape = _single_input_shape(network)
    if shape is None:
        return lambda x: network(x, training=False)
    tf: Any = importlib.import_module("tensorflow")  # untyped, as keras in model.py

    graph = tf.function(
        lambda x: network(x, training=False),
        input_signature=[tf.TensorSpec([None, *shape[1:]], tf.float32)],
    )
    return lambda x: graph(tf.convert_to_tensor(x, dtype=tf.float32))
