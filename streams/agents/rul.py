"""The RUL agent: readings -> per-device windows (table ``rul``) -> batched predictions -> ``rul``.

Per batch of readings, each device's window is read from the table once, fed, and written
back once; the devices that are due are predicted with one model call per model (in a
worker thread, so the event loop keeps serving). Which model serves a device, the store and
the batch limits come from ``streams.rul`` (see ``sentio_iot.settings.rul``). Predictions are
sent in the transaction of the device's last reading, with the table change: exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust

from sentio_iot.settings.rul import RulSettings
from sentio_iot.streams.app import StreamApp
from sentio_iot.streams.rul.routing import ModelRouter
from sentio_iot.streams.rul.serving import RulBatch
from sentio_iot.streams.rul.store import ModelStore
from sentio_iot.streams.tracing import batch_span, context_headers

log = logging.getLogger(__name__)

AGENT = "rul"


def attach(app: StreamApp) -> None:
    """Declare the ``rul`` table and agent on ``app``; load the configured models now."""
    settings = app.config.streams.rul
    router = ModelRouter(settings, ModelStore(settings.resolved_store_dir()))
    for name in {*settings.models.values(), *settings.feature_models}:
        predictor = router.predictor(name)
        if predictor is not None:
            prep = predictor.model.preprocessing
            log.info(
                "RUL model %s version %d serves (features %s; history inputs: %s)",
                name,
                predictor.model.version,
                ", ".join(prep.features),
                ", ".join(prep.context) or "none",
            )
    table = app.table("rul")
    app.serde("readings")
    app.serde("rul")
    app.serde("deadletter")

    async def rul(stream: faust.StreamT[bytes]) -> None:
        async for events in app.batches(stream, within_s=settings.max_wait_s):
            await process_batch(app, table, events, router, settings)

    app.faust.agent(app.topic("readings"), name=f"sentio.{AGENT}")(rul)


async def process_batch(
    app: StreamApp,
    table: Any,
    events: Sequence[faust.EventT[bytes]],
    router: ModelRouter,
    settings: RulSettings,
) -> None:
    """Fold a batch into the windows, predict the due devices, send, write each window once."""
    app.metrics.events.inc(AGENT, by=len(events))
    batch = RulBatch(router, settings.min_interval_s)
    last_event: dict[str, faust.EventT[bytes]] = {}
    with batch_span(AGENT, (e.message.headers for e in events)) as span:
        for event in events:
            reading = await app.decode(AGENT, event, "readings")
            if reading is None:
                continue
            device_id = reading["device_id"]
            if not batch.loaded(device_id):
                with app.in_partition_of(event):
                    batch.load(device_id, table.get(device_id.encode()))
            if batch.add(reading):
                last_event[device_id] = event
        # Inference off the event loop: the model call is the only heavy work here.
        predicted = await asyncio.to_thread(lambda: list(batch.predictions(settings.batch_size)))
        headers = context_headers(span)
        for model_name, records in predicted:
            for record in records:
                device_id = record["device_id"]
                await app.send(
                    AGENT, "rul", device_id, record, source=last_event[device_id], headers=headers
                )
            app.metrics.rul_predictions.inc(model_name, by=len(records))
        for device_id, event in last_event.items():
            state = batch.dump(device_id)
            if state is not None:
                with app.in_partition_of(event):
                    table[device_id.encode()] = state
        span.set_attribute("sentio.rul.predictions", sum(len(r) for _, r in predicted))
