"""The rollups + z-score anomaly stage written with Quix Streams, run beside ours by ``--quix``.

    .venv/bin/python -m benchmarks.e2e.quix_stage CONFIG

Reads the benchmark's readings (same topic, same broker) in its own consumer group
(``<app_id>-quix``), exactly once, and per device: 60 s tumbling rollups of every metric
(the fold of ``benchmarks/streams_bench.py``: count, min, max, sum, mean, stddev, last) to
``<prefix>quix-rollups``, and a z-score per metric against the device's running mean and
variance (Welford, in the Quix state store) for every reading to ``<prefix>quix-anomalies``.
Runs until SIGTERM; the benchmark measures it by its group's lag and committed offsets, as it
measures our stream workers.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from benchmarks.streams_bench import WINDOW_S, finish, fold, start
from sentio_iot.config import load_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde

WARMUP = 10  # readings of a metric before its z-score is emitted


def zscores(reading: dict[str, Any], state: Any) -> dict[str, Any]:
    """The reading's z-score per metric against the device's running mean and variance."""
    stats: dict[str, list[float]] = state.get("stats", {})
    scores: dict[str, float | None] = {}
    for metric in reading["metrics"]:
        value = metric["value"]
        if value is None:
            continue
        n, mean, m2 = stats.get(metric["name"], (0.0, 0.0, 0.0))
        std = math.sqrt(m2 / n) if n else 0.0
        scores[metric["name"]] = abs(value - mean) / std if n >= WARMUP and std > 0 else None
        n += 1
        delta = value - mean
        mean += delta / n
        m2 += delta * (value - mean)
        stats[metric["name"]] = [n, mean, m2]
    state.set("stats", stats)
    return {"device": reading["device_id"], "ts": reading["ts"], "scores": scores}


def main(config_path: str) -> None:
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    config = load_config(Path(config_path))
    serde = AvroSerde(
        SchemaRegistry(config.schema_registry), spec("readings").topic(config.topics), "Reading"
    )

    class AvroReading(Deserializer):
        def __call__(self, value: bytes, ctx: Any) -> Any:
            return serde.decode(value)

    app = Application(
        broker_address=config.kafka.bootstrap_servers,
        consumer_group=f"{config.streams.app_id}-quix",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=str(Path(config.streams.state_dir) / "quix"),
        loglevel="WARNING",
        commit_interval=2.0,  # our workers' streams.commit_interval_s
    )
    source = app.topic(
        serde.topic,
        value_deserializer=AvroReading(),  # type: ignore[no-untyped-call]
        timestamp_extractor=lambda value, headers, ts, kind: value["ts"] // 1000,
    )
    prefix = config.topics.prefix
    anomalies = app.topic(f"{prefix}quix-anomalies", value_serializer="json")
    rollups = app.topic(f"{prefix}quix-rollups", value_serializer="json")
    sdf = app.dataframe(source)
    sdf.apply(zscores, stateful=True).to_topic(anomalies)
    windows = sdf.tumbling_window(WINDOW_S * 1000, grace_ms=0).reduce(fold, start).final()
    windows.apply(finish).to_topic(rollups)
    app.run()


if __name__ == "__main__":
    main(sys.argv[1])
