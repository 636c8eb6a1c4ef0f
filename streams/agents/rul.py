"""The RUL agent: readings -> per-device windows (table ``rul``) -> batched predictions -> ``rul``.

A step of the readings agent (``readings.py``). Each device's window lives in memory
(``state.py``) and is written only at snapshots, rebuilt by replay (``snapshots.py``); the
devices that are due are predicted with one model call per model (in a worker thread, so the
event loop keeps serving), never in a replay. Which model serves a device, the store and
the batch limits come from ``streams.rul`` (see ``sentio_iot.settings.rul``). Predictions are
sent in the transaction of the device's last reading in the batch: exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from sentio_iot.settings.rul import RulSettings
from sentio_iot.streams.app import Event, StreamApp
from sentio_iot.streams.readings import ReadingBatch
from sentio_iot.streams.rul.predictor import DeviceWindow
from sentio_iot.streams.rul.routing import ModelRouter
from sentio_iot.streams.rul.serving import RulBatch
from sentio_iot.streams.rul.store import ModelStore
from sentio_iot.streams.state import dump_state, load_state

log = logging.getLogger(__name__)

AGENT = "rul"


def attach(app: StreamApp) -> None:
    """Declare the ``rul`` table and agent on ``app``; start loading the configured models."""
    settings = app.config.streams.rul
    router = ModelRouter(settings, ModelStore(settings.resolved_store_dir()))
    models = ModelLoading(router, sorted({*settings.models.values(), *settings.feature_models}))
    app.serde("rul")
    app.add_reading_step(RulStep(app, router, settings, models))


class ModelLoading:
    """The configured models, loaded in a thread from ``attach`` on; the first batch waits.

    Importing TensorFlow and loading the models was most of a worker's start (10-22 s on the
    2-core machine, docs/benchmarks.md): meanwhile the worker now joins its group and recovers
    its tables (a replay waits: the models decide which devices have windows). A model that cannot be loaded is logged and serves
    nothing, as before (``ModelRouter.predictor``).
    """

    def __init__(self, router: ModelRouter, names: list[str]) -> None:
        self.router, self.names = router, names
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="rul-models", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            for name in self.names:
                predictor = self.router.predictor(name)
                if predictor is not None:
                    predictor.warm_up()
                    prep = predictor.model.preprocessing
                    log.info(
                        "RUL model %s version %d serves (features %s; history inputs: %s)",
                        name,
                        predictor.model.version,
                        ", ".join(prep.features),
                        ", ".join(prep.context) or "none",
                    )
        except BaseException as exc:  # raised again in the first batch
            log.exception("loading the RUL models failed")
            self.error = exc

    async def ready(self) -> None:
        """Return once the models are loaded (raise what loading them raised)."""
        if self._thread.is_alive():
            t = time.perf_counter()
            await asyncio.to_thread(self._thread.join)
            log.info("the first batch waited %.2f s for the RUL models", time.perf_counter() - t)
        if self.error is not None:
            raise self.error


class RulStep:
    """Per batch: fold readings into device windows, predict the due devices in one call."""

    name = AGENT
    topics: tuple[str, ...] = ()

    def __init__(
        self, app: StreamApp, router: ModelRouter, settings: RulSettings, models: ModelLoading
    ) -> None:
        self.app = app
        self.router = router
        self.settings = settings
        self.models = models
        self.states = app.live_states("rul", load, dump)

    async def process(self, batch: ReadingBatch) -> None:
        # A replay waits too: which model serves a device, and its window's shape, are the
        # loaded models' (ModelRouter.predictor).
        await self.models.ready()
        settings, states = self.settings, self.states
        serving = RulBatch(self.router, settings.min_interval_s)
        last_event: dict[str, Event] = {}
        for event, reading in batch.readings:
            device_id = reading["device_id"]
            if not serving.loaded(device_id):
                serving.windows[device_id] = states.get(device_id, event)
            if serving.add(reading):
                last_event[device_id] = event
        for device_id, event in last_event.items():
            window = serving.windows.get(device_id)
            if window is not None:
                states.put(device_id, window, event)
        if not serving.due or batch.replayed:  # a replay's predictions were sent before
            return
        # Inference off the event loop: the model call is the only heavy work here.
        predicted = await asyncio.to_thread(lambda: list(serving.predictions(settings.batch_size)))
        for model_name, records in predicted:
            for record in records:
                device_id = record["device_id"]
                batch.emit(AGENT, "rul", device_id, record, last_event[device_id])
            self.app.metrics.rul_predictions.inc(model_name, by=len(records))


def load(raw: bytes) -> DeviceWindow:
    return DeviceWindow.from_state(load_state(raw))


def dump(window: DeviceWindow) -> bytes:
    return dump_state(window.to_state())
