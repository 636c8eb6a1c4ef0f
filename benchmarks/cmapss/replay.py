"""``python -m benchmarks.cmapss.replay [--set FD001] [--data DIR]``: the whole test file
through the pipeline.

Replays ``test_<set>.txt`` with the replay producer into Kafka (as fast as it goes), lets a
`sentio stream worker` with the RUL agent predict, reads the ``rul`` topic, and compares each
engine's last prediction with the offline prediction of the serving model on its last window.
Uses the running local stack, unique topic names, and a temporary empty model store (so the
shipped ``cmapss_<set>`` model serves). Prints one table row.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from confluent_kafka import Consumer

from benchmarks.cmapss import DEFAULT_DATA
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.producers.runtime import ProducerRuntime
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.streams.rul.cmapss import read_engines, read_rul, rmse
from sentio_iot.streams.rul.model import predict
from sentio_iot.streams.rul.preprocessing import pad
from sentio_iot.streams.rul.store import ModelStore
from sentio_iot.topic_admin import apply_topics

SENTIO = str(Path(sys.executable).parent / "sentio")
ORIGIN_US = 1_199_145_600_000_000  # 2008-01-01 UTC, the replay default cycle origin
CYCLE_S = 600


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, name: str, base: SentioConfig, data_file: Path, model: str) -> Path:
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": base.kafka.bootstrap_servers},
        "schema_registry": {"url": base.schema_registry.url},
        "topics": {"prefix": f"{name}.", "partitions": 3},
        "streams": {
            "app_id": name,
            "state_dir": str(folder / "state"),
            "rul": {
                "store_dir": str(folder / "models"),
                "min_interval_s": 0,
                "feature_models": [model],  # FD002 engines report FD001's metrics too
            },
        },
        "producer": {"health_port": free_port(), "buffer_dir": str(folder / "buffer")},
        "producers": {
            "replay": [
                {
                    "path": str(data_file),
                    "format": "cmapss",
                    "device_id": "engine",
                    "speed": 0,
                    "timestamps": "original",
                    "cycle_s": CYCLE_S,
                }
            ]
        },
    }
    path = folder / "sentio.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def wait_healthy(port: int, worker: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"stream worker exited with {worker.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("stream worker not healthy in time")


def read_last(config: SentioConfig, wanted: dict[str, int], timeout_s: float) -> dict[str, Any]:
    """Read ``rul`` until every device's prediction at its last timestamp came (or timeout)."""
    topic = spec("rul").topic(config.topics)
    consumer = Consumer(
        {
            "bootstrap.servers": config.kafka.bootstrap_servers,
            "group.id": f"{topic}-bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    last: dict[str, Any] = {}
    count = 0
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, "RulPrediction")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and any(
                last.get(d, {}).get("ts") != ts for d, ts in wanted.items()
            ):
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                record = serde.decode(message.value())
                count += 1
                if record["ts"] >= last.get(record["device_id"], {}).get("ts", 0):
                    last[record["device_id"]] = record
        finally:
            consumer.close()
    last["__count__"] = count
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cmapss.replay", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", default="FD001")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for results")
    args = parser.parse_args(argv)
    data_file = args.data / f"test_{args.set}.txt"
    engines = read_engines(data_file)
    truth = np.minimum(read_rul(args.data / f"RUL_{args.set}.txt"), 125.0)
    name = f"bench-rul-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix=name) as tmp:
        folder = Path(tmp)
        model = f"cmapss_{args.set.lower()}"
        config = load_config(write_config(folder, name, load_config(None), data_file, model))
        apply_topics(config)
        port = free_port()
        command = [SENTIO, "stream", "worker", "-c", str(folder / "sentio.yaml")]
        command += ["--web-port", str(port), "--agents", "rul"]
        with (folder / "worker.log").open("ab") as log:
            worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(port, worker)
            began = time.perf_counter()
            runtime = ProducerRuntime(config, "replay", progress_every_s=30.0)
            asyncio.run(runtime.run(duration_s=args.timeout))
            wanted = {
                f"engine-{e.unit}": ORIGIN_US + int(e.cycles[-1]) * CYCLE_S * 10**6 for e in engines
            }
            last = read_last(config, wanted, args.timeout)
            seconds = time.perf_counter() - began
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        served = ModelStore(folder / "models").load(model)
    prep = served.preprocessing
    x = np.stack([pad(prep.history(e.column(prep.metrics)), prep.window) for e in engines])
    offline = predict(served.network, x)
    streamed = np.array([last.get(f"engine-{e.unit}", {}).get("rul", np.nan) for e in engines])
    complete = [last.get(d, {}).get("ts") == ts for d, ts in wanted.items()]
    readings = sum(len(e) for e in engines)
    print(
        "| set | engines | readings | predictions | engines complete | max abs diff | "
        "RMSE stream | RMSE offline | s | readings/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.set} | {len(engines)} | {readings} | {last['__count__']} | {sum(complete)} | "
        f"{np.nanmax(np.abs(streamed - offline)):.2e} | {rmse(streamed, truth):.2f} | "
        f"{rmse(offline, truth):.2f} | {seconds:.0f} | {readings / seconds:.0f} |"
    )
    return 0 if all(complete) else 1


if __name__ == "__main__":
    sys.exit(main())
