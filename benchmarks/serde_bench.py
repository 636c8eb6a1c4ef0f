"""Serde throughput: bare fastavro vs our AvroSerde vs confluent-kafka's Avro serde.

    python benchmarks/serde_bench.py [--records N] [--repeat R] [--registry URL]

Encodes and decodes the same realistic Readings (five metrics, four labels) with each
implementation, side by side in one process, and prints records/s with the ratio to bare
fastavro. Without --registry the schema ids are given up front (no services needed);
confluent-kafka then uses its in-memory mock registry. Bare fastavro decodes with the
logical types stripped, like AvroSerde, so both return integer microseconds; confluent-kafka
converts timestamps to datetime.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro

from sentio_iot.config import SchemaRegistrySettings
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas import load_schema
from sentio_iot.serde import AvroSerde

TOPIC = "bench.readings"


def readings(count: int) -> list[dict[str, Any]]:
    """Readings shaped like a plant's: four numeric metrics and one text, labels per line."""
    start = 1_764_331_200_000_000
    return [
        {
            "device_id": f"press-{i % 500:04d}",
            "ts": start + i * 1000,
            "metrics": [
                {"name": "temperature", "value": 20.0 + (i % 97) * 0.25, "text": None, "unit": "degC", "quality": "GOOD"},
                {"name": "pressure", "value": 1.0 + (i % 13) * 0.01, "text": None, "unit": "bar", "quality": "GOOD"},
                {"name": "vibration", "value": 0.001 * (i % 31), "text": None, "unit": "mm/s", "quality": "UNCERTAIN"},
                {"name": "power", "value": 3.2 + (i % 7), "text": None, "unit": "kW", "quality": "GOOD"},
                {"name": "state", "value": None, "text": "running", "unit": None, "quality": "GOOD"},
            ],
            "labels": {"tenant": "acme", "site": "lyon", "line": f"line-{i % 4}", "model": "hx-200"},
            "source": "modbus",
            "seq": i,
        }
        for i in range(count)
    ]  # fmt: skip


def strip_logical_types(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


@dataclass
class Row:
    operation: str
    implementation: str
    per_s: float
    baseline: float | None = None


def best_rates(runs: Sequence[Callable[[], object]], count: int, repeat: int) -> list[float]:
    """Records/s of each run, best of ``repeat``; runs take turns so load changes hit all alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - started)
    return [count / seconds for seconds in best]


def bare_fastavro(
    records: Sequence[dict[str, Any]],
) -> tuple[Callable[[], object], Callable[[], object]]:
    schema = fastavro.parse_schema(strip_logical_types(load_schema("Reading")))
    bodies = []
    for record in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        bodies.append(buf.getvalue())

    def encode() -> list[bytes]:
        out = []
        for record in records:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema, record)
            out.append(buf.getvalue())
        return out

    def decode() -> list[Any]:
        return [fastavro.schemaless_reader(io.BytesIO(body), schema) for body in bodies]

    return encode, decode


def our_serde(
    records: Sequence[dict[str, Any]], registry: SchemaRegistry | None
) -> tuple[AvroSerde, AvroSerde, list[bytes]]:
    """A writer, a reader whose schema gained a field (so fastavro resolves), and the bytes."""
    evolved = load_schema("Reading")
    evolved["fields"].append(
        {"name": "firmware", "type": ["null", "string"], "default": None, "doc": "Firmware."}
    )
    if registry is None:
        writer = AvroSerde(None, TOPIC, "Reading", schema_id=1)
        reader = AvroSerde(
            None, TOPIC, evolved, schema_id=2, writer_schemas={1: load_schema("Reading")}
        )
    else:
        writer = AvroSerde(registry, TOPIC, "Reading")
        writer.register()
        reader = AvroSerde(registry, TOPIC, evolved)
        reader.register()
    return writer, reader, [writer.encode(r) for r in records]


def confluent_serde(
    records: Sequence[dict[str, Any]], registry_url: str | None
) -> tuple[Callable[[], object], Callable[[], object]] | str:
    """confluent-kafka's AvroSerializer/AvroDeserializer, or why they cannot run here."""
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext
    except ImportError as exc:
        return f"not available ({exc}); pip install 'confluent-kafka[avro,schemaregistry]'"
    if registry_url:
        client: Any = SchemaRegistryClient({"url": registry_url})
    else:
        from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
            MockSchemaRegistryClient,
        )

        client = MockSchemaRegistryClient({"url": "mock://bench"})
    serializer = AvroSerializer(client, json.dumps(load_schema("Reading")))
    deserializer = AvroDeserializer(client)
    ctx = SerializationContext(TOPIC, MessageField.VALUE)
    encoded = [serializer(r, ctx) for r in records]
    return (
        lambda: [serializer(r, ctx) for r in records],
        lambda: [deserializer(data, ctx) for data in encoded],
    )


def measure(count: int, repeat: int, registry_url: str | None) -> tuple[list[Row], list[str]]:
    records = readings(count)
    registry = (
        SchemaRegistry(SchemaRegistrySettings.model_validate({"url": registry_url}))
        if registry_url
        else None
    )
    bare_encode, bare_decode = bare_fastavro(records)
    writer, reader, encoded = our_serde(records, registry)
    assert [writer.decode(d) for d in encoded] == records
    confluent = confluent_serde(records, registry_url)
    notes = [
        f"{count} readings of {len(encoded[0])} bytes on the wire (5 metrics, 4 labels); "
        f"best of {repeat} runs"
    ]
    if isinstance(confluent, str):
        notes.append(f"confluent-kafka: {confluent}")
    runs: dict[str, list[tuple[str, Callable[[], object]]]] = {
        "encode": [
            ("fastavro schemaless_writer (bare)", bare_encode),
            ("AvroSerde.encode", lambda: [writer.encode(r) for r in records]),
        ],
        "decode": [
            ("fastavro schemaless_reader (bare)", bare_decode),
            ("AvroSerde.decode", lambda: [writer.decode(d) for d in encoded]),
            ("AvroSerde.decode, evolved reader", lambda: [reader.decode(d) for d in encoded]),
        ],
    }
    if not isinstance(confluent, str):
        runs["encode"].append(("confluent-kafka AvroSerializer", confluent[0]))
        runs["decode"].append(("confluent-kafka AvroDeserializer", confluent[1]))
    rows = []
    for operation, implementations in runs.items():
        rates = best_rates([run for _, run in implementations], count, repeat)
        baseline = rates[0]  # the first of each operation is bare fastavro
        for index, ((name, _), rate) in enumerate(zip(implementations, rates, strict=True)):
            rows.append(Row(operation, name, rate, baseline if index else None))
    if registry is not None:
        registry.close()
    return rows, notes


def table(rows: Sequence[Row]) -> str:
    header = f"{'operation':<9} {'implementation':<36} {'records/s':>12} {'us/record':>10}"
    lines = [f"{header} {'vs bare':>8}"]
    for row in rows:
        ratio = f"{row.per_s / row.baseline:.2f}x" if row.baseline else "1.00x"
        lines.append(
            f"{row.operation:<9} {row.implementation:<36} {row.per_s:>12,.0f} {1e6 / row.per_s:>10.2f} {ratio:>8}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=50_000, help="readings per run")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per implementation; the best counts"
    )
    parser.add_argument(
        "--registry", help="Confluent-compatible registry URL; default: no registry"
    )
    args = parser.parse_args(argv)
    rows, notes = measure(args.records, args.repeat, args.registry)
    print(table(rows))
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
