"""Sink benchmark: samples/s written to VictoriaMetrics through the sink vs a bare POST loop.

    .venv/bin/python benchmarks/sinks_bench.py [--readings 50000] [--metrics 4] [--batch-size 5000]

Needs the local stack (Kafka, registry, VictoriaMetrics on :8428; SENTIO_CONFIG and
SENTIO_* variables apply). Creates its own topics (prefix ``bench-<random>.``, deleted
afterwards) and writes series ``sentio_bench_m<i>`` with device ids ``bench-<random>-...``.

For each wire format (import: JSON lines to /api/v1/import; remote write: snappy protobuf
to /api/v1/write), in the same run, against the same endpoint:

- **sink**: ``SinkRuntime`` over a topic holding the readings (Avro): consume, decode, map to
  series, encode, POST, commit offsets. Timed from the first record consumed (the group
  join before it is not sink work) until the backend acknowledged the last.
- **encode only**: grouping the samples and building the request bodies, best of three:
  the CPU the sink's process spends per wire format.
- **bare**: the same readings' request bodies, built before the clock starts (same batch
  size), POSTed one after the other by one httpx client: the endpoint's own speed.

Each run has its own device ids so no run's samples are deduplicated against another's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.kafka import admin_client, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.sinks.victoriametrics import (
    IMPORT_HEADERS,
    IMPORT_PATH,
    REMOTE_WRITE_HEADERS,
    REMOTE_WRITE_PATH,
)
from sentio_iot.sinks.vm_payloads import group, import_body, remote_write_body
from sentio_iot.sinks.vm_series import Defaults, reading_samples

T0_US = 1_780_000_000_000_000
METHODS: dict[str, tuple[str, dict[str, str], Callable[..., bytes]]] = {
    "import": (IMPORT_PATH, IMPORT_HEADERS, import_body),
    "remote_write": (REMOTE_WRITE_PATH, REMOTE_WRITE_HEADERS, remote_write_body),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--metrics", type=int, default=4, help="metrics per reading")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--max-in-flight", type=int, default=2)
    return parser.parse_args()


def readings(prefix: str, count: int, metrics: int, devices: int) -> list[dict[str, Any]]:
    return [
        {
            "device_id": f"{prefix}-{i % devices:04d}",
            "ts": T0_US + (i // devices) * 1000,
            "metrics": [
                {"name": f"bench_m{m}", "value": i * 0.5 + m, "unit": "u"} for m in range(metrics)
            ],
            "source": "simulate",
            "labels": {"tenant": "bench", "site": "bench", "kind": "pump"},
            "seq": i,
        }
        for i in range(count)
    ]


def create_topic(config: SentioConfig, topic: str) -> None:
    admin = admin_client(config.kafka)
    for future in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        future.result(timeout=15)


def publish(config: SentioConfig, topic: str, records: list[dict[str, Any]]) -> None:
    create_topic(config, topic)
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, "Reading")
        producer = Producer(producer_config(config.kafka))
        for record in records:
            producer.produce(topic, serde.encode(record), record["device_id"].encode())
            producer.poll(0)
        assert producer.flush(60) == 0


async def run_sink(config: SentioConfig, records: int, group_id: str) -> float:
    """Seconds from the first record consumed (after the group join) to the last one written."""
    runtime = SinkRuntime(
        config, "victoriametrics", group_id=group_id, health_port=0, progress_every_s=3600
    )
    task = asyncio.create_task(runtime.run())
    try:
        while runtime.metrics.records_written < records:
            if task.done():
                task.result()
                raise RuntimeError("the sink stopped early")
            await asyncio.sleep(0.002)
        ended = time.monotonic()
    finally:
        runtime.stop()
        await task
    assert runtime.first_consumed_at is not None
    return ended - runtime.first_consumed_at


def bare_posts(url: str, headers: dict[str, str], bodies: list[bytes]) -> float:
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post(url, content=body, headers=headers)
            assert response.status_code < 300, response.text
        return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    # the sink subscribes to rollups, anomalies, ... too: their absence is not news here
    logging.basicConfig(level=logging.ERROR)
    run = f"bench-{uuid.uuid4().hex[:6]}"
    base = load_config()
    defaults = Defaults(base.tenant, base.site)
    samples = args.readings * args.metrics
    rows: list[tuple[str, float, int]] = []
    topics: list[str] = []
    sizes: dict[str, float] = {}
    try:
        for method, (path, headers, encode) in METHODS.items():
            config = load_config(
                data={
                    "topics": {"prefix": f"{run}-{method}."},
                    "sinks": {
                        "batch_size": args.batch_size,
                        "batch_timeout_s": 0.5,
                        "max_in_flight": args.max_in_flight,
                        "victoriametrics": {"method": method, "health_port": 0},
                    },
                }
            )
            topic = f"{run}-{method}.readings"
            topics += [topic, f"{run}-{method}.deadletter"]
            create_topic(config, f"{run}-{method}.deadletter")
            publish(
                config,
                topic,
                readings(f"{run}-sink-{method}", args.readings, args.metrics, args.devices),
            )
            bare = readings(f"{run}-bare-{method}", args.readings, args.metrics, args.devices)
            samples_of = [
                [s for r in bare[i : i + args.batch_size] for s in reading_samples(r, defaults)]
                for i in range(0, len(bare), args.batch_size)
            ]
            encode_s = []
            for _ in range(3):  # best of three: the CPU is shared
                started = time.perf_counter()
                bodies = [encode(group(batch)) for batch in samples_of]
                encode_s.append(time.perf_counter() - started)
            rows.append((f"encode only (CPU), {method}", min(encode_s), samples))
            sizes[method] = round(sum(len(b) for b in bodies) / samples, 1)
            url = config.sinks.victoriametrics.url.rstrip("/") + path
            seconds = bare_posts(url, headers, bodies)
            rows.append((f"bare POST loop, {method}", seconds, samples))
            seconds = asyncio.run(run_sink(config, args.readings, f"{run}-{method}"))
            rows.append((f"sink, {method}", seconds, samples))
    finally:
        if topics:
            admin = admin_client(base.kafka)
            for future in admin.delete_topics(topics).values():
                future.result(timeout=15)
    print(
        f"\n{args.readings} readings x {args.metrics} metrics, batch {args.batch_size}, max in flight {args.max_in_flight}"
    )
    print(f"{'run':<32} {'samples':>10} {'seconds':>9} {'samples/s':>12}")
    rates: dict[str, float] = {}
    for name, seconds, count in rows:
        rates[name] = count / seconds
        print(f"{name:<32} {count:>10} {seconds:>9.2f} {count / seconds:>12,.0f}")
    print(f"request bytes per sample: {sizes}")
    for method in METHODS:
        ratio = rates[f"sink, {method}"] / rates[f"bare POST loop, {method}"]
        print(f"sink / bare ({method}): {ratio:.0%}")


if __name__ == "__main__":
    main()
