"""The RUL agent through `sentio stream worker` against the real Kafka: a few C-MAPSS test
engines, published cycle by cycle as readings (directly, and by the replay producer), get
exactly the offline predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stream_worker import Received, StreamTestbed, free_port, stream_testbed_fixture  # noqa: F401

from sentio_iot.producers.runtime import ProducerRuntime
from sentio_iot.records import Metric, Reading
from sentio_iot.streams.rul.cmapss import COLUMNS, Engine, read_engines
from sentio_iot.streams.rul.model import predict
from sentio_iot.streams.rul.preprocessing import pad
from sentio_iot.streams.rul.store import ModelStore
from sentio_iot.topic_admin import apply_topics

DATA = Path(__file__).parent.parent / "data" / "cmapss"
T0 = 1_700_000_000_000_000
CYCLE_US = 600_000_000  # the replay producer's default spacing is configurable; any works


def test_replayed_engines_get_the_offline_predictions(
    stream_testbed: StreamTestbed,
    tmp_path: Path,
) -> None:
    store_dir = tmp_path / "models"  # empty: the shipped cmapss_fd001 serves
    bed = stream_testbed.configure(
        streams={
            "rul": {
                "store_dir": str(store_dir),
                "feature_models": ["cmapss_fd001"],
                "min_interval_s": 0,
            }
        }
    )
    worker = bed.start_worker(agents="rul")
    engines = read_engines(DATA / "test_FD001_few.txt")
    records = []
    for cycle in range(1, max(len(e) for e in engines) + 1):  # engines interleaved, in time order
        for engine in engines:
            if cycle <= len(engine):
                values = engine.values[cycle - 1]
                metrics = [Metric(n, float(v)) for n, v in zip(COLUMNS, values, strict=True)]
                device = f"fd001-{engine.unit}"
                reading = Reading(
                    device, T0 + cycle * CYCLE_US, metrics, "replay", {"set": "fd001"}
                )
                records.append((device, reading.to_record()))
    bed.produce("readings", records)

    received = bed.read("rul", count=len(engines), settle_s=5.0)
    check_last_predictions(received, engines, store_dir, T0, CYCLE_US, {"set": "fd001"})
    assert worker.metric('sentio_stream_rul_predictions_total{model="cmapss_fd001"}') == len(
        received
    )
    assert worker.stop() == 0


async def test_the_replay_producer_feeds_the_rul_agent(
    stream_testbed: StreamTestbed,
    tmp_path: Path,
) -> None:
    store_dir = tmp_path / "models"
    bed = stream_testbed.configure(
        streams={"rul": {"store_dir": str(store_dir), "min_interval_s": 0}}
    )
    worker = bed.start_worker(agents="rul")
    replay = {
        "path": str(DATA / "test_FD001_few.txt"),
        "format": "cmapss",
        "device_id": "fd001",
        "speed": 0,
        "timestamps": "original",
        "cycle_s": 600,
        "cycle_origin": "2008-01-01T00:00:00Z",
        "labels": {"set": "fd001"},
    }
    producer = bed.config.producer.model_copy(
        update={"health_port": free_port(), "buffer_dir": tmp_path / "buffer"}
    )
    config = bed.config.model_copy(update={"producers": {"replay": [replay]}, "producer": producer})
    apply_topics(config)  # the producer also writes device events
    await ProducerRuntime(config, "replay").run(duration_s=60)  # ends with the file

    engines = read_engines(DATA / "test_FD001_few.txt")
    received = bed.read("rul", count=len(engines), settle_s=5.0)
    origin_us = 1_199_145_600_000_000  # 2008-01-01 UTC
    check_last_predictions(received, engines, store_dir, origin_us, 600_000_000, {"set": "fd001"})
    assert worker.stop() == 0


def check_last_predictions(
    received: list[Received],
    engines: list[Engine],
    store_dir: Path,
    origin_us: int,
    cycle_us: int,
    labels: dict[str, str],
) -> None:
    """The last prediction of each engine equals the offline one on its last window."""
    last: dict[str, dict[str, Any]] = {}
    for message in received:
        record = message.value
        assert message.key == record["device_id"].encode()
        if record["ts"] > last.get(record["device_id"], {}).get("ts", 0):
            last[record["device_id"]] = record
    served = ModelStore(store_dir).load("cmapss_fd001")
    prep = served.preprocessing
    x = np.stack([pad(prep.history(e.column(prep.metrics)), prep.window) for e in engines])
    offline = predict(served.network, x)
    assert sorted(last) == sorted(f"fd001-{e.unit}" for e in engines)
    for engine, expected in zip(engines, offline, strict=True):
        got = last[f"fd001-{engine.unit}"]
        assert got["ts"] == origin_us + int(engine.cycles[-1]) * cycle_us
        assert got["rul"] == pytest.approx(expected, abs=1e-3)
        assert (got["model_name"], got["model_version"]) == ("cmapss_fd001", str(served.version))
        assert (got["rul_unit"], got["window_size"]) == ("cycles", 30)
        assert got["labels"].items() >= labels.items()
