"""The anomaly agent: readings -> Anomaly records, one online detector per (device, metric).

A step of the readings agent (``readings.py``): a device's series
(:class:`~sentio_iot.streams.anomaly.Series` per metric: detector memory and episode
bookkeeping) live in memory (``state.py``), are fed the batch's values in order, and are
written to the ``anomaly_devices`` table (key: device id, one compact record for all its
metrics, see :meth:`~sentio_iot.streams.anomaly.AnomalyScorer.dump_device`) once per commit;
anomalies go to the anomalies topic in the same Kafka transaction as the table changes and
the source offsets. The scoring itself is :class:`~sentio_iot.streams.anomaly.AnomalyScorer`,
Kafka-free.
"""

from __future__ import annotations

import logging

from sentio_iot.streams.anomaly import AnomalyScorer, Series
from sentio_iot.streams.app import StreamApp
from sentio_iot.streams.readings import ReadingBatch
from sentio_iot.streams.state import dump_state, load_state

log = logging.getLogger(__name__)

AGENT = "anomaly"
TABLE = "anomaly_devices"


def attach(app: StreamApp) -> None:
    """Run the anomaly step in the readings agent; a bad detector setting fails here, at start-up."""
    app.serde("anomalies")
    app.add_reading_step(AnomalyStep(app, AnomalyScorer(app.config.streams.anomaly)))


class AnomalyStep:
    """Per batch: score every scorable value with its series' detector, emit the anomalies."""

    name = AGENT
    topics: tuple[str, ...] = ()

    def __init__(self, app: StreamApp, scorer: AnomalyScorer) -> None:
        self.app = app
        self.scorer = scorer
        self.states = app.live_states(
            TABLE,
            lambda raw: scorer.restore_device(load_state(raw)),
            lambda series: dump_state(scorer.dump_device(series)),
        )

    async def process(self, batch: ReadingBatch) -> None:
        scorer, states, counter = self.scorer, self.states, self.app.metrics.anomalies
        for event, reading in batch.readings:
            device_id = str(reading["device_id"])
            device: dict[str, Series] | None = states.get(device_id, event)
            if device is None:
                device = {}
            states.put(device_id, device, event)
            for metric, value in scorer.scorable(reading):
                series = device.get(metric)
                if series is None:
                    series = device[metric] = scorer.new_series()
                anomaly = scorer.observe(
                    series, device_id, metric, reading["ts"], value, reading["labels"]
                )
                if anomaly is not None:
                    batch.emit(AGENT, "anomalies", anomaly.device_id, anomaly.to_record(), event)
                    if not batch.replayed:  # sent once, counted once
                        counter.inc(anomaly.detector)
