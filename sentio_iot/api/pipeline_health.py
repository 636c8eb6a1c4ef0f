"""Pipeline health for the API: each worker's /health and throughput, and consumer lag.

Measured on a thread every few seconds (the same probes as `sentio run`'s live view), so a
request only reads the last measurement.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sentio_iot.api.payloads import PipelineHealth, WorkerHealth
from sentio_iot.config import SentioConfig
from sentio_iot.pipeline.orchestrator import work_done
from sentio_iot.pipeline.probes import probe_workers
from sentio_iot.pipeline.processes import ChildSpec
from sentio_iot.pipeline.rates import RateMeter
from sentio_iot.pipeline.workers import SINKS, sink_port, stream_port

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    workers: list[tuple[str, bool, float | None]] = field(default_factory=list)
    lag: dict[str, int] = field(default_factory=dict)


def worker_specs(config: SentioConfig) -> list[ChildSpec]:
    specs = [ChildSpec("producer", (), port=config.producer.health_port or None)]
    specs.append(ChildSpec("streams-1", (), port=stream_port(config, 0)))
    specs.extend(ChildSpec(f"sink-{b}", (), port=sink_port(config, b)) for b in SINKS)
    return specs


class PipelineHealthMeter:
    def __init__(self, config: SentioConfig) -> None:
        self.config = config
        self.specs = worker_specs(config)
        self.rates = RateMeter()
        self._lag: object | None = None

    def measure(self) -> Snapshot:
        now = time.monotonic()
        snapshot = Snapshot()
        for name, probe in probe_workers(self.specs).items():
            done = work_done(name, probe.samples) if probe.samples else None
            if done is not None:
                self.rates.add(name, done, now)
            snapshot.workers.append((name, probe.healthy, self.rates.rate(name)))
        try:
            from sentio_iot.pipeline.lag import ConsumerLag

            if self._lag is None:
                self._lag = ConsumerLag(self.config)
            assert isinstance(self._lag, ConsumerLag)
            snapshot.lag = self._lag.measure()
        except Exception as exc:  # Kafka away: health shows no lag rather than failing
            log.warning("consumer lag not measured: %s", exc)
        return snapshot


def pipeline_report(snapshot: Snapshot | None, views_ready: bool, records: int) -> PipelineHealth:
    """GET /api/v1/health/pipeline's body, and the live ``pipeline`` update's data."""
    workers = [
        WorkerHealth(name=name, healthy=healthy, rate_per_s=rate)
        for name, healthy, rate in (snapshot.workers if snapshot else [])
    ]
    return PipelineHealth(
        views_ready=views_ready,
        view_records=records,
        workers=workers,
        lag=dict(snapshot.lag) if snapshot else {},
    )
