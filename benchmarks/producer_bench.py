"""Producer benchmark: the simulated plant through the real Publisher vs bare confluent-kafka.

    .venv/bin/python benchmarks/producer_bench.py [--readings 200000] [--devices 100]

Needs the local stack (``sentio stack up``: Kafka on 127.0.0.1:9092 and the schema
registry); SENTIO_CONFIG and SENTIO_* variables apply as everywhere. It creates its own
topics (prefix ``bench-<random>.``) and deletes them afterwards unless ``--keep-topics``.

Three measurements of the same readings (same seed and start time, so byte-identical; the
benchmark reads the Publisher's messages back and compares them with the bare run's bytes):

1. stages, each alone on one thread, tick by tick: generation (the plant model),
   Avro encode (ReadingEncoder, as the Publisher does it), and the bare ``produce()`` calls;
2. (A) bare confluent-kafka: the pre-encoded bytes produced with the Publisher's producer
   settings, from the first ``produce()`` until ``flush()`` returns;
3. (B) the publishing runtime: ``SimulatedPlantConnector`` emitting into ``Publisher``
   (encode, trace headers, metrics, the store-and-forward Forwarder) until ``close()`` has
   every message confirmed. "runtime's own work and waiting" is (B) minus the stages.

The ratio is (B) / (A) in readings/s; the goal is 70 %. Schema subjects registered for the
benchmark topics stay in the registry.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import SentioError
from sentio_iot.kafka import admin_client, consumer_config, producer_config
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.publisher import Publisher
from sentio_iot.producers.simulate.config import SimulateConfig
from sentio_iot.producers.simulate.connector import SimulatedPlantConnector
from sentio_iot.producers.simulate.plant import Plant
from sentio_iot.reading_codec import ReadingEncoder
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.topic_admin import apply_topics

GOAL = 0.70
TOPIC_SPECS = tuple(spec(name) for name in ("readings", "device-events", "deadletter"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=200_000, help="readings per run")
    parser.add_argument("--devices", type=int, default=100, help="simulated devices")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the topics")
    return parser.parse_args()


def plant_config(devices: int, readings: int, seed: int) -> SimulateConfig:
    """As fast as the machine goes: the pacing never waits at ten million readings/s."""
    return SimulateConfig.model_validate(
        {
            "devices": devices,
            "rate": 10_000_000,
            "rate_per": "fleet",
            "seed": seed,
            "count": max(1, readings // devices),
            "time_acceleration": 10_000,  # a plant hour per ~0.4 s at 1 reading/s/device
            "start_time": datetime(2024, 1, 1, tzinfo=UTC),
            "anomaly_rate": 1.0,
        }
    )


@dataclass
class Stages:
    """Seconds spent in each step before Kafka, and the encoded messages (key, value)."""

    generate_s: float = 0.0
    to_record_s: float = 0.0
    encode_s: float = 0.0
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)


def encode_all(config: SimulateConfig, labels: dict[str, str], encoder: ReadingEncoder) -> Stages:
    """Each stage timed tick by tick, the objects dropped after each tick as in the runtime
    (holding every Reading alive would bill the garbage collector to the stages)."""
    plant = Plant(config, config.start_us(0), labels)
    stages = Stages()
    clock = time.perf_counter
    assert config.count is not None
    for _ in range(config.count):
        began = clock()
        readings = plant.step().readings
        generated = clock()
        recorded = clock()
        values = [encoder.encode(r) for r in readings]  # what the Publisher does
        encoded = clock()
        stages.generate_s += generated - began
        stages.to_record_s += recorded - generated
        stages.encode_s += encoded - recorded
        stages.messages.extend(
            (r.device_id.encode(), v) for r, v in zip(readings, values, strict=True)
        )
    return stages


def bare_producer_config(config: SentioConfig) -> dict[str, Any]:
    """The Publisher's delivery settings: idempotent, acks=all, lz4, its linger and timeout."""
    return producer_config(
        config.kafka,
        **{
            "linger.ms": config.producer.linger_ms,
            "message.timeout.ms": int(config.producer.message_timeout_s * 1000),
        },
    )


def bare_produce(
    producer_config: dict[str, Any], topic: str, messages: list[tuple[bytes, bytes]]
) -> tuple[float, float]:
    """Seconds in produce() calls and in total (until flush returns) for pre-encoded bytes."""
    producer = Producer(producer_config)
    producer.list_topics(topic, timeout=10)  # connect and fetch metadata before timing
    produce, poll = producer.produce, producer.poll
    began = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.005)
        poll(0)
    produced = time.perf_counter()
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} bare message(s) not confirmed in 60 s")
    return produced - began, time.perf_counter() - began


async def publish(config: SentioConfig, plant: SimulateConfig, publisher: Publisher) -> float:
    """Seconds from the first reading until the Publisher confirmed every message."""
    context = ConnectorContext(tenant=config.tenant, site=config.site)
    connector = SimulatedPlantConnector(plant, publisher, context)
    began = time.perf_counter()
    await connector.connect()
    await connector.run()
    await connector.close()
    await asyncio.to_thread(publisher.close, 60.0)
    return time.perf_counter() - began


def row(name: str, seconds: float, count: int, note: str = "") -> str:
    rate = f"{count / seconds:,.0f}" if seconds > 0 else "-"
    return f"| {name:<42} | {seconds * 1e6 / count:>10.2f} | {rate:>11} | {note} |"


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # flat out, the plant is always behind its (unreachable) rate: that is the point here
    logging.getLogger("sentio_iot.producers.simulate").setLevel(logging.ERROR)
    base = load_config(Path(os.environ["SENTIO_CONFIG"]) if "SENTIO_CONFIG" in os.environ else None)
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory(prefix="sentio-bench-") as tmp:
        config = base.model_copy(
            update={
                "topics": base.topics.model_copy(update={"prefix": prefix}),
                "producer": base.producer.model_copy(
                    update={"buffer_dir": Path(tmp), "health_port": 0}
                ),
            }
        )
        bare_settings = config.topics.model_copy(update={"prefix": f"{prefix}bare."})
        bare_config = config.model_copy(update={"topics": bare_settings})
        apply_topics(config, TOPIC_SPECS)
        apply_topics(bare_config, (spec("readings"),))
        topics = [s.topic(config.topics) for s in TOPIC_SPECS] + [
            spec("readings").topic(bare_settings)
        ]
        try:
            return run(args, config, topics)
        finally:
            if not args.keep_topics:
                admin = admin_client(config.kafka)  # kept alive until the deletes finish
                for future in admin.delete_topics(topics).values():
                    future.result(timeout=30)


def run(args: argparse.Namespace, config: SentioConfig, topics: list[str]) -> int:
    plant = plant_config(args.devices, args.readings, args.seed)
    context = ConnectorContext(tenant=config.tenant, site=config.site)
    publisher = Publisher(config, "simulate")
    publisher.register_schemas()
    # the Publisher's subject and schema: the same schema id, so the very same bytes
    serde = AvroSerde(SchemaRegistry(config.schema_registry), publisher.readings_topic, "Reading")
    encoder = ReadingEncoder(serde.register(), topic=publisher.readings_topic)

    stages = encode_all(plant, context.base_labels(), encoder)
    gen_s, record_s, encode_s = stages.generate_s, stages.to_record_s, stages.encode_s
    messages = stages.messages
    count = len(messages)
    size = sum(len(v) for _, v in messages) / count

    produce_s, bare_s = bare_produce(bare_producer_config(config), topics[-1], messages)
    publisher.start()
    published_s = asyncio.run(publish(config, plant, publisher))
    published = publisher.metrics.total(publisher.metrics.published)
    ratio = (count / published_s) / (count / bare_s)

    same = same_bytes(config, topics[0], messages)
    stage_sum = gen_s + record_s + encode_s + produce_s
    print(f"\nproducer benchmark: {count:,} readings from {args.devices} simulated devices")
    print(
        f"avg value {size:.0f} bytes; Kafka {config.kafka.bootstrap_servers}; topics {prefix_of(topics[0])}*\n"
    )
    print(f"| {'stage':<42} | {'us/reading':>10} | {'readings/s':>11} | note |")
    print(f"|{'-' * 44}|{'-' * 11}:|{'-' * 12}:|------|")
    print(row("generate (plant model -> Reading)", gen_s, count, "one thread, alone"))
    print(row("Avro encode (ReadingEncoder)", encode_s, count, "one thread, alone"))
    print(row("produce() calls, pre-encoded", produce_s, count, "bare confluent-kafka"))
    print(row("runtime's own work and waiting", published_s - stage_sum, count, "the rest of (B)"))
    print(
        row("(A) bare confluent-kafka, produce + flush", bare_s, count, "same bytes, same settings")
    )
    print(
        row(
            "(B) simulate -> Publisher -> confirmed",
            published_s,
            count,
            f"{published:,.0f} confirmed; {same}",
        )
    )
    goal = "meets" if ratio >= GOAL else "below"
    print(f"\n(B)/(A): {ratio:.0%} of bare confluent-kafka ({goal} the {GOAL:.0%} goal)")
    return 0 if published >= count else 1


def prefix_of(topic: str) -> str:
    return topic.rsplit(".", 1)[0] + "."


def same_bytes(config: SentioConfig, topic: str, messages: list[tuple[bytes, bytes]]) -> str:
    """Read back what the Publisher wrote and compare it with the bare run's bytes."""
    consumer = Consumer(consumer_config(config.kafka, f"{topic}-check"))
    consumer.subscribe([topic])
    wanted, seen = Counter(messages), Counter[tuple[bytes, bytes]]()
    deadline = time.monotonic() + 60
    try:
        while sum(seen.values()) < len(messages) and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() is None:
                    seen[(message.key() or b"", message.value() or b"")] += 1
    finally:
        consumer.close()
    return "identical bytes" if seen == wanted else f"DIFFERENT bytes ({sum(seen.values())} read)"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SentioError as exc:  # Kafka or the registry away: one line, with the fix
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
