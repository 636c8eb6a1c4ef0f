"""What the alert delivery tests share: a pipeline of their own, Alert records, a receiver.

The receiver is a real aiohttp server in the test process that records every request
(headers and raw body) and answers what the test tells it to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.kafka import admin_client, consumer_config, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.runtime import SinkRuntime

TOPICS = ("alerts", "alert-commands", "deadletter")
S = 1_000_000


def pipeline_config(prefix: str, **sinks: Any) -> SentioConfig:
    return load_config(
        data={
            "tenant": "acme",
            "site": "hall-2",
            "topics": {"prefix": prefix, "partitions": 1},
            "sinks": {
                "batch_timeout_s": 0.2,
                "retry_backoff_initial_s": 0.2,
                "retry_backoff_max_s": 2.0,
                **sinks,
            },
        }
    )


def create_topics(config: SentioConfig, names: tuple[str, ...] = TOPICS) -> None:
    admin = admin_client(config.kafka)
    new = []
    for name in names:
        entry = spec(name)
        configs = entry.kafka_configs()
        new.append(NewTopic(entry.topic(config.topics), 1, 1, config=configs))
    for future in admin.create_topics(new).values():
        future.result(timeout=15)


def alert(
    device: str,
    status: str,
    *,
    alert_type: str = "device_offline",
    severity: str = "MAJOR",
    start_ts: int = 1_795_000_000_000_000,
    count: int = 1,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An Alert record (schemas/avro/Alert.avsc) as the alerts agent writes it."""
    return {
        "alert_id": f"{device}/{alert_type}/{start_ts}",
        "device_id": device,
        "type": alert_type,
        "severity": severity,
        "status": status,
        "start_ts": start_ts,
        "end_ts": start_ts + 40 * S if status == "RESOLVED" else None,
        "ack_ts": start_ts + 10 * S if status == "ACKNOWLEDGED" else None,
        "count": count,
        "message": f"{device} OFFLINE: no reading for 30 s",
        "details": {"metric": "availability", "value": "0"},
        "labels": {"kind": "pump", **(labels or {})},
    }


def publish(config: SentioConfig, records: list[dict[str, Any]], name: str = "alerts") -> None:
    topic = spec(name).topic(config.topics)
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, str(spec(name).value_schema))
        producer = Producer(producer_config(config.kafka))
        for record in records:
            key = (
                record["device_id"]
                if name == "alert-commands"
                else f"{record['device_id']}/{record['type']}"
            )
            producer.produce(topic, serde.encode(record), key.encode())
        assert producer.flush(15) == 0


def read_topic(
    config: SentioConfig, name: str, expected: int, timeout_s: float = 20
) -> list[dict[str, Any]]:
    topic = spec(name).topic(config.topics)
    consumer = Consumer(consumer_config(config.kafka, f"check-{time.monotonic_ns()}"))
    consumer.subscribe([topic])
    found: list[dict[str, Any]] = []
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, str(spec(name).value_schema))
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(serde.decode(message.value()))
    consumer.close()
    return found


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[Request], Awaitable[web.Response]]


async def accept(_request: Request) -> web.Response:
    return web.Response(status=200)


@dataclass
class Receiver:
    """An HTTP server that records every POST; ``answer`` decides the response."""

    answer: Answer = accept
    requests: list[Request] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self, port: int = 0) -> Receiver:
        async def receive(request: web.Request) -> web.Response:
            got = Request(request.path, dict(request.headers), await request.read())
            response = await self.answer(got)
            if response.status < 300:
                self.requests.append(got)
            return response

        app = web.Application()
        app.router.add_post("/{tail:.*}", receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.port = self.runner.addresses[0][1]
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(self, done: Callable[[list[Request]], bool], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self.requests):
            assert time.monotonic() < deadline, f"{len(self.requests)} request(s) received"
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def run_until(
    runtime: SinkRuntime, done: Callable[[], bool], timeout_s: float = 30.0
) -> None:
    """Run the sink until ``done()``, then stop it (open batch written, offsets committed)."""
    task = asyncio.create_task(runtime.run())
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, (
                f"{runtime.metrics.records_written} written, {runtime.metrics.deadletter} dead-lettered"
            )
            await asyncio.sleep(0.1)
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 30)
