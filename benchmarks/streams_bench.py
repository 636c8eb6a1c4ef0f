"""Rollups throughput: our Faust rollups agent vs the same aggregation in Quix Streams.

    .venv/bin/python benchmarks/streams_bench.py --readings 60000 --devices 200 [--profile]

Both read the same pre-produced Avro readings (one topic, same broker, same run) with
exactly-once processing and compute 60 s tumbling windows per device and metric on event time
(count, min, max, sum, mean, last, stddev); each emits the closed windows to its own topic.
Sustained readings/s = readings / (time of the last processed - time of the first), start-up
excluded. Then the stage timing of our hot path without Kafka (decode, aggregate, state, encode)
and, with --profile, the top functions of a cProfile run of the worker.
"""

from __future__ import annotations

import argparse
import math
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.records import Metric, Reading
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.topic_admin import apply_topics

S = 1_000_000
T0 = 1_700_000_040 * S
METRICS = ("temperature", "vibration", "current", "pressure", "speed")
WINDOW_S = 60


def make_config(work: Path, name: str, partitions: int) -> tuple[Path, SentioConfig]:
    base = load_config(os.environ.get("SENTIO_CONFIG"))
    data = {
        "kafka": {"bootstrap_servers": base.kafka.bootstrap_servers},
        "schema_registry": {"url": base.schema_registry.url},
        "topics": {"prefix": f"{name}.", "partitions": partitions},
        "streams": {
            "app_id": name,
            "state_dir": str(work / "state"),
            "rollups": {"windows_s": [WINDOW_S], "grace_s": 0},
        },
    }
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_config(path)


def readings(count: int, devices: int, metrics_per_reading: int = 3) -> list[Reading]:
    out = []
    names = METRICS[:metrics_per_reading]
    for i in range(count):
        device, second = i % devices, i // devices
        metrics = [
            Metric(m, math.sin(second / 7 + k) * 10 + device, "u") for k, m in enumerate(names)
        ]
        out.append(Reading(f"dev-{device:04d}", T0 + second * S, metrics, "bench", {"line": "a"}))
    return out


def produce(config: SentioConfig, data: list[Reading]) -> AvroSerde:
    apply_topics(config, (spec("readings"),))
    registry = SchemaRegistry(config.schema_registry)
    serde = AvroSerde(registry, spec("readings").topic(config.topics), "Reading")
    serde.register()
    producer = Producer({"bootstrap.servers": config.kafka.bootstrap_servers, "linger.ms": 50})
    topic = serde.topic
    for i, reading in enumerate(data):
        value = serde.encode(reading.to_record())
        producer.produce(topic, key=reading.device_id.encode(), value=value)
        if i % 5000 == 0:
            producer.poll(0)
    producer.flush(60)
    return serde


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(port: int, prefix: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith(prefix):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        return -1.0
    return 0.0


def run_faust(config_path: Path, count: int, work: Path, profile: bool) -> dict[str, float]:
    port = free_port()
    command = [str(Path(sys.executable).with_name("sentio"))]
    if profile:
        code = (
            "import sys, cProfile; from sentio_iot.cli.main import main; "
            f"sys.argv = ['sentio'] + sys.argv[1:]; cProfile.run('main()', {str(work / 'faust.prof')!r})"
        )
        command = [sys.executable, "-c", code]
    command += ["stream", "worker", "-c", str(config_path), "--web-port", str(port)]
    command += ["--agents", "rollups"]
    log = (work / "faust.log").open("wb")
    worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    events = 'sentio_stream_events_total{agent="rollups"}'
    first = last = 0.0
    try:
        deadline = time.monotonic() + 600
        seen = 0.0
        while seen < count and time.monotonic() < deadline:
            seen = metric(port, events)
            now = time.monotonic()
            if seen > 0 and not first:
                first, first_seen = now, seen
            time.sleep(0.2)
        last = time.monotonic()
        time.sleep(1.0)  # let the last windows' sends count
        emitted = metric(port, 'sentio_stream_emitted_total{agent="rollups",topic="rollups"}')
        phases = {
            phase: metric(port, f'sentio_stream_seconds_total{{phase="{phase}"}}')
            for phase in ("process_batch", "wait_for_commit", "flush_table_changes", "commit")
        }
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    processed = count - first_seen  # the first batch was counted when it started
    return {
        "rate": processed / max(last - first, 1e-9),
        "seconds": last - first,
        "out": emitted,
        **phases,
    }


def run_quix(config: SentioConfig, serde: AvroSerde, count: int, work: Path) -> dict[str, float]:
    from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    class AvroReading(Deserializer):
        def __call__(self, value: bytes, ctx: Any) -> Any:
            return serde.decode(value)

    clock = {"first": 0.0, "last": 0.0, "n": 0}
    holder: dict[str, Any] = {}

    def processed(topic: str, partition: int, offset: int) -> None:
        clock["n"] += 1
        now = time.monotonic()
        if not clock["first"]:
            clock["first"] = now
        clock["last"] = now
        if clock["n"] >= count:
            holder["app"].stop()

    app = Application(
        broker_address=config.kafka.bootstrap_servers,
        on_message_processed=processed,
        consumer_group=f"{config.streams.app_id}-quix",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=str(work / "quix-state"),
        loglevel="WARNING",
        commit_interval=1.0,
    )
    source = app.topic(
        serde.topic,
        value_deserializer=AvroReading(),
        timestamp_extractor=lambda value, headers, ts, kind: value["ts"] // 1000,
    )
    output = app.topic(f"{config.topics.prefix}quix-rollups", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.tumbling_window(WINDOW_S * 1000, grace_ms=0).reduce(fold, start).final()
    sdf = sdf.apply(finish)
    sdf.to_topic(output)
    holder["app"] = app
    app.run()
    seconds = clock["last"] - clock["first"]
    return {"rate": (clock["n"] - 1) / max(seconds, 1e-9), "seconds": seconds, "out": -1}


def start(reading: dict[str, Any]) -> dict[str, list[float]]:
    return fold({}, reading)


def fold(acc: dict[str, list[float]], reading: dict[str, Any]) -> dict[str, list[float]]:
    """count, min, max, sum, welford mean, m2, last, last_ts per metric: what RollupAggregator keeps."""
    ts = reading["ts"]
    for metric in reading["metrics"]:
        value = metric["value"]
        if value is None:
            continue
        stats = acc.get(metric["name"])
        if stats is None:
            acc[metric["name"]] = [1, value, value, value, value, 0.0, value, ts]
            continue
        stats[0] += 1
        stats[1] = min(stats[1], value)
        stats[2] = max(stats[2], value)
        stats[3] += value
        delta = value - stats[4]
        stats[4] += delta / stats[0]
        stats[5] += delta * (value - stats[4])
        if ts >= stats[7]:
            stats[6], stats[7] = value, ts
    return acc


def finish(window: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "metric": name,
            "start": window["start"],
            "count": s[0],
            "min": s[1],
            "max": s[2],
            "sum": s[3],
            "mean": s[3] / s[0],
            "stddev": math.sqrt(s[5] / s[0]),
            "last": s[6],
        }
        for name, s in window["value"].items()
    ]


def stage_timing(serde: AvroSerde, data: list[Reading], devices: int) -> list[tuple[str, float]]:
    """µs per reading of each step of the agent's hot path, without Kafka."""
    from sentio_iot.streams.agents.rollups import dump
    from sentio_iot.streams.rollups import RollupAggregator

    raw = [serde.encode(r.to_record()) for r in data]
    t = time.perf_counter()
    decoded = [serde.decode(v) for v in raw]
    t_decode = time.perf_counter() - t
    aggregators: dict[str, RollupAggregator] = {}
    closed = []
    t = time.perf_counter()
    for record in decoded:
        device_id = record["device_id"]
        agg = aggregators.get(device_id)
        if agg is None:
            agg = aggregators[device_id] = RollupAggregator([WINDOW_S], 0)
        for m in record["metrics"]:
            closed += agg.add(device_id, m["name"], record["ts"], m["value"], m["unit"], {})
    t_add = time.perf_counter() - t
    rollup_serde = AvroSerde(None, "x", "Rollup", schema_id=1)
    t = time.perf_counter()
    for rollup in closed:
        rollup_serde.encode(rollup.to_record())
    t_encode = time.perf_counter() - t
    batches = max(len(data) // 2000, 1)  # one state write per device per batch of 2000
    t = time.perf_counter()
    for _ in range(batches):
        for agg in aggregators.values():
            dump(agg)
    t_state = time.perf_counter() - t
    n = len(data)
    return [
        ("decode Avro", t_decode / n * 1e6),
        ("aggregate", t_add / n * 1e6),
        ("state to JSON (per device per batch)", t_state / n * 1e6),
        ("encode Rollups", t_encode / n * 1e6),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=60_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the Faust worker")
    args = parser.parse_args()
    name = f"bench-streams-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=name))
    try:
        config_path, config = make_config(work, name, args.partitions)
        data = readings(args.readings, args.devices)
        t = time.perf_counter()
        serde = produce(config, data)
        print(
            f"produced {len(data)} readings x {len(METRICS)} metrics, {args.devices} devices, "
            f"{args.partitions} partitions in {time.perf_counter() - t:.1f} s"
        )
        ours = run_faust(config_path, len(data), work, args.profile)
        quix = run_quix(config, serde, len(data), work)
        expected = args.devices * len(METRICS) * ((len(data) // args.devices - 1) // WINDOW_S)
        print()
        print(f"{'engine':<34}{'readings/s':>12}{'seconds':>10}{'rollups out':>13}")
        print(
            f"{'sentio rollups agent (Faust, EOS)':<34}{ours['rate']:>12,.0f}{ours['seconds']:>10.2f}{ours['out']:>13,.0f}"
        )
        print(
            f"{'Quix Streams tumbling reduce (EOS)':<34}{quix['rate']:>12,.0f}{quix['seconds']:>10.2f}{'-':>13}"
        )
        print(
            f"ratio sentio/quix: {ours['rate'] / quix['rate']:.2f}   (closed windows expected ~{expected:,})"
        )
        print()
        print(f"{'worker time by phase (whole run)':<40}{'seconds':>12}")
        for phase in ("process_batch", "wait_for_commit", "flush_table_changes", "commit"):
            print(f"{phase:<40}{ours[phase]:>12.2f}")
        print()
        print(f"{'hot path without Kafka':<40}{'µs/reading':>12}")
        for stage, micros in stage_timing(serde, data[:20_000], args.devices):
            print(f"{stage:<40}{micros:>12.2f}")
        if args.profile:
            print("\ncProfile of the worker, top 25 by internal time:")
            stats = pstats.Stats(str(work / "faust.prof"))
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats("faust|sentio|aiokafka|mode", 30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
