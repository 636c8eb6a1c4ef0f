"""The anomaly agent: readings -> Anomaly records, one online detector per (device, metric).

Per batch, each series' state (:class:`~sentio_iot.streams.anomaly.Series`: detector memory
and episode bookkeeping) is read from the ``anomaly`` table (key ``device|metric``) once, fed
the batch's values in order, and written back once; anomalies go to the anomalies topic in
the same Kafka transaction as the table changes and the source offsets. The scoring itself
is :class:`~sentio_iot.streams.anomaly.AnomalyScorer`, Kafka-free.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import TableT

from sentio_iot.streams.anomaly import Anomaly, AnomalyScorer, Series, series_key
from sentio_iot.streams.app import Event, StreamApp
from sentio_iot.streams.tracing import batch_span, context_headers

log = logging.getLogger(__name__)

AGENT = "anomaly"


def attach(app: StreamApp) -> None:
    """Declare the ``anomaly`` table and agent; a bad detector setting fails here, at start-up."""
    scorer = AnomalyScorer(app.config.streams.anomaly)
    table = app.table("anomaly")
    app.serde("readings")
    app.serde("anomalies")
    app.serde("deadletter")

    async def anomaly(stream: faust.StreamT[bytes]) -> None:
        async for events in app.batches(stream):
            await process_batch(app, table, scorer, events)

    app.faust.agent(app.topic("readings"), name=f"sentio.{AGENT}")(anomaly)


async def process_batch(
    app: StreamApp, table: TableT[bytes, bytes], scorer: AnomalyScorer, events: Sequence[Event]
) -> None:
    """Score a batch, write each touched series once, send the anomalies."""
    app.metrics.events.inc(AGENT, by=len(events))
    touched: dict[str, tuple[Series, Event]] = {}
    found: list[tuple[Anomaly, Event]] = []
    with batch_span(AGENT, (e.message.headers for e in events)) as span:
        for event in events:
            reading = await app.decode(AGENT, event, "readings")
            if reading is None:
                continue
            device_id = str(reading["device_id"])
            for metric, value in scorer.scorable(reading):
                key = series_key(device_id, metric)
                series = touched[key][0] if key in touched else load(app, table, scorer, key, event)
                touched[key] = (series, event)
                anomaly = scorer.observe(
                    series, device_id, metric, reading["ts"], value, reading["labels"]
                )
                if anomaly is not None:
                    found.append((anomaly, event))
        for key, (series, event) in touched.items():
            with app.in_partition_of(event):
                table[key.encode()] = json.dumps(series.to_state(), separators=(",", ":")).encode()
        headers = context_headers(span)
        span.set_attribute("sentio.anomaly.count", len(found))
        for anomaly, event in found:
            await app.send(
                AGENT,
                "anomalies",
                anomaly.device_id,
                anomaly.to_record(),
                source=event,
                headers=headers,
            )
            app.metrics.anomalies.inc(anomaly.detector)


def load(
    app: StreamApp, table: TableT[bytes, bytes], scorer: AnomalyScorer, key: str, event: Event
) -> Series:
    with app.in_partition_of(event):
        stored = table.get(key.encode())
    state: Any = None
    if stored is not None:
        try:
            state = json.loads(stored)
        except ValueError:
            log.warning("unreadable detector state for %s dropped: the series warms up again", key)
    return scorer.restore(state)
