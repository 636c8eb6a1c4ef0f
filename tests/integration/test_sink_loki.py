"""The Loki sink against the real Kafka, registry and VictoriaLogs, and a receiver in the test.

Device events, alerts and anomalies are published (Avro) to topics of this test only; the
sink pushes them to VictoriaLogs' Loki endpoint (protobuf+snappy, and JSON), and LogsQL must
give back every line with its labels, structured metadata and nanosecond time. A receiver in
the test decodes the protobuf with google.protobuf classes declared here from Loki's field
numbers, so the exact message shape is checked independently of our encoder.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import cramjam
import httpx
import pytest
from aiohttp import web
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import ConfigError
from sentio_iot.kafka import admin_client, consumer_config, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.runtime import SinkRuntime

VL = "http://127.0.0.1:9428"
TOPICS = ("device-events", "alerts", "anomalies", "deadletter")
SCHEMAS = {"device-events": "DeviceEvent", "alerts": "Alert", "anomalies": "Anomaly"}
TS = 1_795_000_000_000_000  # µs
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01".encode()


def sink_config(prefix: str, url: str, fmt: str) -> SentioConfig:
    return load_config(
        data={
            "tenant": "acme",
            "site": "hall-2",
            "topics": {"prefix": prefix, "partitions": 1},
            "sinks": {
                "batch_timeout_s": 0.2,
                "loki": {"url": url, "format": fmt, "health_port": 0},
            },
        }
    )


def create_topics(config: SentioConfig) -> None:
    admin = admin_client(config.kafka)
    topics = [NewTopic(spec(n).topic(config.topics), 1, 1) for n in TOPICS]
    for future in admin.create_topics(topics).values():
        future.result(timeout=15)


def publish(config: SentioConfig, records: list[tuple[str, dict[str, Any]]]) -> None:
    with SchemaRegistry(config.schema_registry) as registry:
        serdes = {
            n: AvroSerde(registry, spec(n).topic(config.topics), s) for n, s in SCHEMAS.items()
        }
        producer = Producer(producer_config(config.kafka))
        for name, value in records:
            producer.produce(
                spec(name).topic(config.topics),
                serdes[name].encode(value),
                value["device_id"].encode(),
                headers=[("traceparent", TRACEPARENT)],
            )
        assert producer.flush(15) == 0


def known_records(device: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "device-events",
            {
                "device_id": device,
                "ts": TS + 1,
                "kind": "OFFLINE",
                "message": "no reading for 30 s",
                "source": "modbus",
                "labels": {"kind": "pump", "tenant": "acme", "site": "hall-2"},
            },
        ),
        (
            "alerts",
            {
                "alert_id": f"{device}-a1",
                "device_id": device,
                "type": "device_offline",
                "severity": "MAJOR",
                "status": "FIRING",
                "start_ts": TS + 2,
                "message": "offline for 30 s",
                "details": {"metric": "availability"},
                "labels": {"kind": "pump"},
            },
        ),
        (
            "anomalies",
            {
                "device_id": device,
                "metric": "vibration",
                "ts": TS + 3,
                "value": 9.5,
                "score": 6.25,
                "threshold": 4.0,
                "detector": "robust_zscore",
                "detector_version": "1",
                "labels": {"kind": "pump"},
            },
        ),
    ]


def expected_lines(device: str) -> list[dict[str, Any]]:
    """What each pushed entry must be: labels, line, metadata, time in ns."""
    base = {"service_name": "sentio", "tenant": "acme", "site": "hall-2", "kind": "pump"}
    return [
        {
            "labels": {**base, "stream": "device-events", "level": "error", "event": "OFFLINE"},
            "line": f"{device} OFFLINE: no reading for 30 s",
            "metadata": {"device_id": device, "trace_id": TRACE_ID},
            "ts_ns": (TS + 1) * 1000,
        },
        {
            "labels": {**base, "stream": "alerts", "level": "major", "event": "FIRING"},
            "line": f"{device} device_offline MAJOR FIRING: offline for 30 s",
            "metadata": {
                "device_id": device,
                "alert_id": f"{device}-a1",
                "alert_type": "device_offline",
                "metric": "availability",
                "trace_id": TRACE_ID,
            },
            "ts_ns": (TS + 2) * 1000,
        },
        {
            "labels": {**base, "stream": "anomalies", "level": "warning", "event": "anomaly"},
            "line": f"{device} vibration anomaly: value 9.5, score 6.25 over threshold 4 (robust_zscore 1)",
            "metadata": {"device_id": device, "metric": "vibration", "trace_id": TRACE_ID},
            "ts_ns": (TS + 3) * 1000,
        },
    ]


async def run_until(runtime: SinkRuntime, done: int, timeout_s: float = 30.0) -> None:
    task = asyncio.create_task(runtime.run())
    deadline = time.monotonic() + timeout_s
    try:
        while runtime.metrics.records_written + runtime.metrics.deadletter < done:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"only {runtime.metrics.records_written} written"
            await asyncio.sleep(0.1)
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 30)


def logsql(query: str, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        response = httpx.post(f"{VL}/select/logsql/query", data={"query": query}, timeout=10)
        response.raise_for_status()
        rows = [json.loads(line) for line in response.text.splitlines()]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def rfc3339_ns(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}".rstrip("0") + "Z"
    )


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
async def test_lines_come_back_from_victorialogs(unique_name: str, fmt: str) -> None:
    config = sink_config(f"{unique_name}.", f"{VL}/insert/loki/api/v1/push", fmt)
    create_topics(config)
    device = f"{unique_name}-pump"
    publish(config, known_records(device))
    runtime = SinkRuntime(config, "loki", group_id=unique_name, health_port=0)
    await run_until(runtime, done=3)
    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (3, 0)

    rows = logsql(f'device_id:"{device}"', 3)
    got = sorted(rows, key=lambda r: r["_time"])
    assert len(got) == 3
    for row, want in zip(got, expected_lines(device), strict=True):
        assert row["_msg"] == want["line"]
        assert row["_time"] == rfc3339_ns(want["ts_ns"])
        stream = ",".join(f'{k}="{v}"' for k, v in sorted(want["labels"].items()))
        assert row["_stream"] == "{" + stream + "}"
        fields = {k: v for k, v in row.items() if not k.startswith("_")}
        assert fields == {**want["labels"], **want["metadata"]}


# -- the exact protobuf message, checked by a receiver in the test -----------------------

F = descriptor_pb2.FieldDescriptorProto


def push_request_class() -> Any:
    """Loki's PushRequest declared here from its field numbers (independent of our encoder)."""
    file = descriptor_pb2.FileDescriptorProto(name="push_test.proto", package="logproto")
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    spec_ = {
        "Timestamp": [("seconds", 1, F.TYPE_INT64, opt, ""), ("nanos", 2, F.TYPE_INT32, opt, "")],
        "LabelPairAdapter": [
            ("name", 1, F.TYPE_STRING, opt, ""),
            ("value", 2, F.TYPE_STRING, opt, ""),
        ],
        "EntryAdapter": [
            ("timestamp", 1, F.TYPE_MESSAGE, opt, ".logproto.Timestamp"),
            ("line", 2, F.TYPE_STRING, opt, ""),
            ("structuredMetadata", 3, F.TYPE_MESSAGE, rep, ".logproto.LabelPairAdapter"),
        ],
        "StreamAdapter": [
            ("labels", 1, F.TYPE_STRING, opt, ""),
            ("entries", 2, F.TYPE_MESSAGE, rep, ".logproto.EntryAdapter"),
        ],
        "PushRequest": [("streams", 1, F.TYPE_MESSAGE, rep, ".logproto.StreamAdapter")],
    }
    for name, fields in spec_.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


async def test_protobuf_push_has_the_exact_loki_shape(unique_name: str) -> None:
    requests: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        requests.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/loki/api/v1/push", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/loki/api/v1/push"
    try:
        config = sink_config(f"{unique_name}.", url, "protobuf")
        create_topics(config)
        device = f"{unique_name}-pump"
        publish(config, known_records(device))
        runtime = SinkRuntime(config, "loki", group_id=unique_name, health_port=0)
        await run_until(runtime, done=3)
    finally:
        await runner.cleanup()

    pushes = [
        (headers, body)
        for headers, body in requests
        if body != bytes(cramjam.snappy.compress_raw(b""))
    ]
    PushRequest = push_request_class()
    entries = []
    for headers, body in pushes:
        assert headers["Content-Type"] == "application/x-protobuf"
        assert headers["Content-Encoding"] == "snappy"
        request = PushRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
        for stream in request.streams:
            for entry in stream.entries:
                entries.append(
                    {
                        "labels": stream.labels,
                        "line": entry.line,
                        "metadata": [(p.name, p.value) for p in entry.structuredMetadata],
                        "ts_ns": entry.timestamp.seconds * 1_000_000_000 + entry.timestamp.nanos,
                    }
                )
    want = [
        {
            "labels": "{"
            + ", ".join(
                f'{k}="{v}"'
                for k, v in [
                    ("service_name", "sentio"),
                    ("stream", w["labels"]["stream"]),
                    ("tenant", "acme"),
                    ("site", "hall-2"),
                    ("kind", "pump"),
                    ("level", w["labels"]["level"]),
                    ("event", w["labels"]["event"]),
                ]
            )
            + "}",
            "line": w["line"],
            "metadata": list(w["metadata"].items()),
            "ts_ns": w["ts_ns"],
        }
        for w in expected_lines(device)
    ]
    assert sorted(entries, key=lambda e: e["ts_ns"]) == want


async def test_refused_entries_go_to_dead_letters_with_the_answer(unique_name: str) -> None:
    """A receiver that refuses any push holding a line with "rul_low": halving finds that record."""
    PushRequest = push_request_class()
    answer = "entry for stream has timestamp too old"

    async def receive(request: web.Request) -> web.Response:
        pushed = PushRequest.FromString(bytes(cramjam.snappy.decompress_raw(await request.read())))
        lines = [e.line for stream in pushed.streams for e in stream.entries]
        if any("rul_low" in line for line in lines):
            return web.Response(status=400, text=answer)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/loki/api/v1/push", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/loki/api/v1/push"
    device = f"{unique_name}-press"
    refused = {
        "alert_id": "r1",
        "device_id": device,
        "type": "rul_low",
        "severity": "CRITICAL",
        "status": "FIRING",
        "start_ts": TS + 9,
    }
    try:
        config = sink_config(f"{unique_name}.", url, "protobuf")
        create_topics(config)
        publish(config, [*known_records(device), ("alerts", refused)])
        runtime = SinkRuntime(config, "loki", group_id=unique_name, health_port=0)
        await run_until(runtime, done=4)
    finally:
        await runner.cleanup()
    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (3, 1)
    letters = read_dead_letters(config, unique_name, 1)
    assert [(d["stage"], d["error_type"], d["topic"], d["key"]) for d in letters] == [
        ("sinks.loki", "RejectedRecords", f"{unique_name}.alerts", device.encode())
    ]
    assert letters[0]["error"] == f"{url} answered 400: {answer}"


def read_dead_letters(config: SentioConfig, group: str, expected: int) -> list[dict[str, Any]]:
    topic = spec("deadletter").topic(config.topics)
    consumer = Consumer(consumer_config(config.kafka, f"{group}-check"))
    consumer.subscribe([topic])
    found: list[dict[str, Any]] = []
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, "DeadLetter")
        deadline = time.monotonic() + 20
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(serde.decode(message.value()))
    consumer.close()
    return found


async def test_wrong_push_url_stops_at_start(unique_name: str) -> None:
    config = sink_config(f"{unique_name}.", f"{VL}/insert/loki/api/v1/pushh", "protobuf")
    with pytest.raises(
        ConfigError, match=r"^sinks\.loki\.url: .*/pushh refused an empty write with 400"
    ):
        await SinkRuntime(config, "loki", group_id=unique_name, health_port=0).run()
