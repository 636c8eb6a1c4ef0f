"""One batch of readings through the RUL models (pure, no Kafka; the RUL agent drives it).

Each device's ``DeviceWindow`` (the agent keeps them live) is fed its readings; a reading
that moves a window ``min_interval`` of event time past its last due reading makes the device
due (decided per reading, so batch cuts change nothing in the windows: ``snapshots.py``).
The due devices' windows at the batch's end are predicted together, one model call per model
and ``batch_size`` devices.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from sentio_iot.streams.rul.predictor import DeviceWindow
from sentio_iot.streams.rul.routing import ModelRouter

log = logging.getLogger(__name__)


class RulBatch:
    def __init__(self, router: ModelRouter, min_interval_s: float) -> None:
        self.router = router
        self.min_interval_us = round(min_interval_s * 1_000_000)
        self.windows: dict[str, DeviceWindow | None] = {}  # None: no model serves the device
        self.due: set[str] = set()  # devices a reading of this batch made due

    def loaded(self, device_id: str) -> bool:
        return device_id in self.windows

    def add(self, reading: Mapping[str, Any]) -> bool:
        """Feed one decoded Reading record; False when no model serves its device."""
        device_id = reading["device_id"]
        values = {m["name"]: m["value"] for m in reading["metrics"]}
        labels = reading.get("labels") or {}
        name = self.router.model_for(labels, values.keys())
        if name is None:
            return False
        predictor = self.router.predictor(name)
        if predictor is None:
            return False
        window = self.windows.get(device_id)
        if window is None or window.model_name != name:
            window = self.windows[device_id] = DeviceWindow(name)  # new, or model changed
        if predictor.observe(window, values, reading["ts"], labels) and window.due(
            self.min_interval_us
        ):
            window.predicted_us = window.ts_us
            self.due.add(device_id)
        return True

    def predictions(self, batch_size: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """(model name, RulPrediction records) for every due device, ``batch_size`` at a time."""
        by_model: dict[str, list[tuple[str, DeviceWindow]]] = {}
        for device_id in sorted(self.due):
            window = self.windows[device_id]
            if window is not None:
                by_model.setdefault(window.model_name, []).append((device_id, window))
        for name, devices in by_model.items():
            predictor = self.router.predictor(name)
            if predictor is None:
                continue
            for first in range(0, len(devices), batch_size):
                yield name, predictor.predict_batch(devices[first : first + batch_size])
