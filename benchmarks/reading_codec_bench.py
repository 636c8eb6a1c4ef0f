"""Reading encoders side by side: AvroSerde and bare fastavro (each after to_record) vs ReadingEncoder.

    .venv/bin/python benchmarks/reading_codec_bench.py [--readings 50000] [--devices 50] [--repeat 5]

All three encode the same simulated plant readings (five metrics, four labels: tenant, site,
line and the device kind) in one process, taking turns, best of ``--repeat`` runs each. The
readings are generated first and not timed. No services needed: the serde gets its schema id
up front. Before timing, the benchmark checks that the three give the same bytes. A last
row times ``to_record()`` alone: the part of the first two that is not Avro.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import fastavro

from sentio_iot.producers.simulate.config import SimulateConfig
from sentio_iot.producers.simulate.plant import Plant
from sentio_iot.reading_codec import ReadingEncoder
from sentio_iot.records import Reading
from sentio_iot.schemas import load_schema
from sentio_iot.serde import HEADER, MAGIC_BYTE, AvroSerde

SCHEMA_ID = 1
TOPIC = "bench.readings"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=50, help="distinct device ids")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each; the best counts")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def plant_readings(count: int, devices: int, seed: int) -> list[Reading]:
    config = SimulateConfig.model_validate(
        {
            "devices": devices,
            "seed": seed,
            "start_time": datetime(2024, 1, 1, tzinfo=UTC),
            "anomaly_rate": 1.0,
            "labels": {"line": "line-2"},
        }
    )
    plant = Plant(config, config.start_us(0), {"tenant": "acme", "site": "lyon"})
    readings: list[Reading] = []
    while len(readings) < count:
        readings += plant.step().readings
    return readings[:count]


def encoders(readings: Sequence[Reading]) -> dict[str, Callable[[], list[bytes]]]:
    serde = AvroSerde(None, TOPIC, "Reading", schema_id=SCHEMA_ID)
    # as AvroSerde parses it: without logical types, which only cost time for int timestamps
    parsed = fastavro.parse_schema(without_logical_types(load_schema("Reading")))
    header = HEADER.pack(MAGIC_BYTE, SCHEMA_ID)
    encoder = ReadingEncoder(SCHEMA_ID, topic=TOPIC)

    def with_serde() -> list[bytes]:
        encode = serde.encode
        return [encode(r.to_record()) for r in readings]

    def with_fastavro() -> list[bytes]:
        write, out = fastavro.schemaless_writer, []
        for r in readings:
            buf = io.BytesIO()
            buf.write(header)
            write(buf, parsed, r.to_record())
            out.append(buf.getvalue())
        return out

    def with_encoder() -> list[bytes]:
        encode = encoder.encode
        return [encode(r) for r in readings]

    return {
        "to_record + AvroSerde.encode": with_serde,
        "to_record + bare fastavro": with_fastavro,
        "ReadingEncoder.encode": with_encoder,
    }


def without_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def best_seconds(runs: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Best wall time of each run; runs take turns so load changes hit all alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def main() -> int:
    args = parse_args()
    readings = plant_readings(args.readings, args.devices, args.seed)
    metrics = sum(len(r.metrics) for r in readings) / len(readings)
    labels = sum(len(r.labels) for r in readings) / len(readings)
    devices = len({r.device_id for r in readings})
    runs = encoders(readings)
    outputs = [run() for run in runs.values()]  # also warms the encoder's caches
    if any(out != outputs[0] for out in outputs):
        print("the encoders disagree on the bytes; not timing them")
        return 1
    size = sum(map(len, outputs[0])) / len(readings)
    print(
        f"{len(readings):,} readings from {devices} devices, {metrics:g} metrics and "
        f"{labels:g} labels each, {size:.0f} bytes encoded; best of {args.repeat}; "
        "same bytes from all three"
    )
    timed: dict[str, Callable[[], object]] = {
        **runs,
        "(to_record alone, for reference)": lambda: [r.to_record() for r in readings],
    }
    seconds = best_seconds(list(timed.values()), args.repeat)
    baseline = seconds[0]
    print(f"| {'encoder':<32} | {'µs/reading':>10} | {'readings/s':>11} | {'vs AvroSerde':>12} |")
    print(f"|{'-' * 34}|{'-' * 11}:|{'-' * 12}:|{'-' * 13}:|")
    for name, s in zip(timed, seconds, strict=True):
        per = s * 1e6 / len(readings)
        rate = len(readings) / s
        print(f"| {name:<32} | {per:>10.2f} | {rate:>11,.0f} | {baseline / s:>11.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
