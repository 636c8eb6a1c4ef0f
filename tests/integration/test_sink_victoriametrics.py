"""The VictoriaMetrics sink against the real Kafka, registry and VictoriaMetrics.

Known records are published (Avro, via AvroSerde) to topics of this test only, the sink
runs over them, and VictoriaMetrics' /api/v1/export must give back exactly the series,
values and millisecond timestamps written. Poison and NaN records end in the dead-letter
topic with the reason; a wrong URL or refused credentials stop the sink at start-up.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import ConfigError
from sentio_iot.kafka import admin_client, consumer_config, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.runtime import SinkRuntime

VM = "http://127.0.0.1:8428"
TOPICS = ("readings", "rollups", "anomalies", "rul", "alerts", "deadletter")
SCHEMAS = {
    "readings": "Reading",
    "rollups": "Rollup",
    "anomalies": "Anomaly",
    "rul": "RulPrediction",
    "alerts": "Alert",
}
TS = 1_795_000_000_000_000  # µs; a fixed day so values are exact
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def sink_config(prefix: str, **vm: Any) -> SentioConfig:
    return load_config(
        data={
            "topics": {"prefix": prefix, "partitions": 2},
            "sinks": {"batch_timeout_s": 0.2, "victoriametrics": {"health_port": 0, **vm}},
        }
    )


def create_topics(config: SentioConfig, names: tuple[str, ...] = TOPICS) -> None:
    admin = admin_client(config.kafka)
    topics = [NewTopic(spec(n).topic(config.topics), 2, 1) for n in names]
    for future in admin.create_topics(topics).values():
        future.result(timeout=15)


def publish(config: SentioConfig, records: list[tuple[str, dict[str, Any] | bytes]]) -> None:
    with SchemaRegistry(config.schema_registry) as registry:
        serdes = {
            n: AvroSerde(registry, spec(n).topic(config.topics), s) for n, s in SCHEMAS.items()
        }
        producer = Producer(producer_config(config.kafka))
        for name, value in records:
            data = value if isinstance(value, bytes) else serdes[name].encode(value)
            key = value["device_id"].encode() if isinstance(value, dict) else b"poison"
            producer.produce(
                spec(name).topic(config.topics), data, key, headers=[("traceparent", TRACEPARENT)]
            )
        assert producer.flush(15) == 0


def publish_in_transactions(config: SentioConfig, values: list[dict[str, Any]]) -> None:
    """Readings the way the stream workers write: one Kafka transaction each, so every record
    is followed by a transaction marker (a control record no consumer ever sees)."""
    with SchemaRegistry(config.schema_registry) as registry:
        topic = spec("readings").topic(config.topics)
        serde = AvroSerde(registry, topic, "Reading")
        settings = producer_config(config.kafka)
        producer = Producer({**settings, "transactional.id": f"{topic}-test"})
        producer.init_transactions(15)
        for value in values:
            producer.begin_transaction()
            producer.produce(topic, serde.encode(value), value["device_id"].encode())
            producer.commit_transaction(15)


def dead_letters(config: SentioConfig, group: str, expected: int) -> list[dict[str, Any]]:
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
    return sorted(found, key=lambda d: d["error_type"])


async def run_until(
    runtime: SinkRuntime, done: int, timeout_s: float = 30.0, check: Any = None
) -> None:
    """Run the sink until ``done`` records were written or dead-lettered, then stop it.

    ``check`` (a coroutine function) runs once that point is reached, before the stop.
    """
    task = asyncio.create_task(runtime.run())
    deadline = time.monotonic() + timeout_s
    try:
        while runtime.metrics.records_written + runtime.metrics.deadletter < done:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"only {runtime.metrics.records_written} written"
            await asyncio.sleep(0.1)
        if check is not None:
            await check()
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 30)


def export(
    match: str, expected_samples: int
) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
    """Series -> sorted (timestamp, value) from /api/v1/export, once all expected samples show."""
    deadline = time.monotonic() + 30
    while True:
        response = httpx.post(f"{VM}/api/v1/export", data={"match[]": match}, timeout=10)
        response.raise_for_status()
        got = {}
        for line in response.text.splitlines():
            doc = json.loads(line)
            key = tuple(sorted(doc["metric"].items()))
            got[key] = sorted(zip(doc["timestamps"], doc["values"], strict=True))
        if sum(len(v) for v in got.values()) >= expected_samples or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def reading(device: str, ts: int, temperature: float, flow: float | None) -> dict[str, Any]:
    metrics = [
        {"name": "Temperature", "value": temperature, "unit": "degC"},
        {"name": "state", "value": None, "text": "RUN"},
    ]
    if flow is not None:
        metrics.append({"name": "flow", "value": flow})
    return {
        "device_id": device,
        "ts": ts,
        "metrics": metrics,
        "source": "simulate",
        "seq": 1,
        "labels": {"tenant": "acme", "site": "s1", "kind": "pump"},
    }


@pytest.mark.parametrize("method", ["import", "remote_write"])
async def test_records_come_back_exactly_from_victoriametrics(
    unique_name: str, method: str
) -> None:
    config = sink_config(f"{unique_name}.", method=method)
    create_topics(config)
    pump, press = f"{unique_name}-pump", f"{unique_name}-press"
    nan_reading = reading(pump, TS + 9_000, float("nan"), 5.0)
    publish(
        config,
        [
            ("readings", reading(pump, TS, 20.5, 1.25)),
            ("readings", reading(pump, TS + 1_000, 21.0, None)),  # 1 ms later
            ("readings", nan_reading),
            ("readings", b"\x00\x00\x00\x00\x01 not avro"),
            (
                "rollups",
                {
                    "device_id": pump,
                    "metric": "temperature",
                    "unit": "degC",
                    "window_start": TS,
                    "window_end": TS + 60_000_000,
                    "window_s": 60,
                    "count": 2,
                    "min": 20.5,
                    "max": 21.0,
                    "mean": 20.75,
                    "sum": 41.5,
                    "last": 21.0,
                    "stddev": 0.25,
                    "labels": {"kind": "pump"},
                },
            ),
            (
                "anomalies",
                {
                    "device_id": press,
                    "metric": "force",
                    "ts": TS + 2_000,
                    "value": 99.0,
                    "score": 8.5,
                    "threshold": 4.0,
                    "expected": 50.0,
                    "detector": "robust_zscore",
                    "detector_version": "1",
                },
            ),
            (
                "rul",
                {
                    "device_id": press,
                    "ts": TS + 3_000,
                    "rul": 120.0,
                    "rul_unit": "cycles",
                    "lower": 100.0,
                    "upper": 140.0,
                    "model_name": "lstm",
                    "model_version": "2",
                    "window_size": 30,
                },
            ),
            (
                "alerts",
                {
                    "alert_id": "a-1",
                    "device_id": press,
                    "type": "anomaly",
                    "severity": "MAJOR",
                    "status": "FIRING",
                    "start_ts": TS + 4_000,
                },
            ),
        ],
    )
    port = free_port()
    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=port)
    served: dict[str, Any] = {}

    async def check_health() -> None:
        async with httpx.AsyncClient() as client:
            served["health"] = (await client.get(f"http://127.0.0.1:{port}/health")).json()
            served["metrics"] = (await client.get(f"http://127.0.0.1:{port}/metrics")).text

    await run_until(runtime, done=8, check=check_health)
    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (6, 2)
    assert served["health"]["status"] == "ok" and served["health"]["group"] == unique_name
    metrics = served["metrics"].splitlines()
    assert 'sentio_sink_records_written_total{sink="victoriametrics"} 6' in metrics
    assert 'sentio_sink_deadletter_total{sink="victoriametrics"} 2' in metrics

    ms = TS // 1000
    pump_labels = {
        "device": pump,
        "tenant": "acme",
        "site": "s1",
        "kind": "pump",
        "source": "simulate",
    }
    press_labels = {"device": press, "tenant": "default", "site": "local"}

    def key(name: str, **labels: str) -> tuple[tuple[str, str], ...]:
        return tuple(sorted({"__name__": name, **labels}.items()))

    expected = {
        key("sentio_temperature", **pump_labels, unit="degC"): [(ms, 20.5), (ms + 1, 21.0)],
        key("sentio_flow", **pump_labels): [
            (ms, 1.25),
            (ms + 9, 5.0),
        ],  # the NaN reading's good metric
        **{
            key(
                f"sentio_temperature_{stat}",
                device=pump,
                tenant="default",
                site="local",
                kind="pump",
                unit="degC",
                window="1m",
            ): [(ms, value)]
            for stat, value in {
                "count": 2,
                "min": 20.5,
                "max": 21.0,
                "mean": 20.75,
                "sum": 41.5,
                "last": 21.0,
                "stddev": 0.25,
            }.items()
        },
        **{
            key(
                f"sentio_anomaly_{field}", **press_labels, metric="force", detector="robust_zscore"
            ): [(ms + 2, value)]
            for field, value in {"score": 8.5, "value": 99.0, "expected": 50.0}.items()
        },
        **{
            key(name, **press_labels, model="lstm", model_version="2", unit="cycles"): [
                (ms + 3, value)
            ]
            for name, value in {
                "sentio_rul": 120.0,
                "sentio_rul_lower": 100.0,
                "sentio_rul_upper": 140.0,
            }.items()
        },
        key("sentio_alert_firing", **press_labels, type="anomaly", severity="MAJOR"): [
            (ms + 4, 1.0)
        ],
    }
    got = export(f'{{device=~"{unique_name}-.*"}}', sum(len(v) for v in expected.values()))
    assert got == expected

    letters = dead_letters(config, unique_name, 2)
    assert [(d["stage"], d["error_type"], d["topic"]) for d in letters] == [
        ("sinks.victoriametrics", "DeserializationError", f"{unique_name}.readings"),
        ("sinks.victoriametrics", "RejectedRecords", f"{unique_name}.readings"),
    ]
    assert letters[0]["value"] == b"\x00\x00\x00\x00\x01 not avro"
    assert letters[1]["error"].startswith(
        "metric(s) Temperature=nan: VictoriaMetrics cannot store NaN or infinite values"
    )
    assert letters[1]["key"] == pump.encode()
    assert [(h["key"], h["value"]) for h in letters[1]["headers"]] == [("traceparent", TRACEPARENT)]


def json_schema_id(config: SentioConfig, subject: str) -> int:
    """Register a JSON schema (not Avro) and return its id, as another team's producer would."""
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",  # Apicurio needs it to tell JSON
        "type": "object",
        "properties": {"temp": {"type": "number"}},
    }
    body = {"schemaType": "JSON", "schema": json.dumps(schema)}
    url = f"{config.schema_registry.url}/subjects/{subject}/versions"
    answer = httpx.post(url, json=body, timeout=10)
    answer.raise_for_status()
    return int(answer.json()["id"])


async def test_poison_never_stops_the_sink_and_nothing_refused_counts_as_written(
    unique_name: str,
) -> None:
    config = sink_config(f"{unique_name}.")
    create_topics(config)
    pump = f"{unique_name}-pump"
    readings = spec("readings").topic(config.topics)
    json_id = json_schema_id(config, f"{unique_name}-other-value")
    huge = b"\x00\x00\x00\x00\x01" + bytes(1_020_000)
    good = [reading(pump, TS + i * 1_000, 20.0 + i, None) for i in range(5)]
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, readings, "Reading")
        producer = Producer({**producer_config(config.kafka), "message.max.bytes": 1_100_000})
        sequence: list[tuple[bytes | None, str]] = [
            (serde.encode(good[0]), "ok"),
            (b"\x00" + json_id.to_bytes(4, "big") + b'{"temp": 1}', "json schema"),
            (serde.encode(good[1]), "ok"),
            (huge, "1 MB"),
            (serde.encode(good[2]), "ok"),
            (serde.encode(reading(pump, TS + 5_000, float("inf"), None)), "+inf"),
            (serde.encode(reading(pump, 253_402_300_799_000_000, 1.0, None)), "year 9999"),
            (serde.encode(reading(pump, 0, 1.0, None)), "ts 0"),
            (serde.encode(reading(pump, -1_000_000, 1.0, None)), "negative ts"),
            (None, "tombstone"),
            (serde.encode(good[3]), "ok"),
            (serde.encode(good[4]), "ok"),
        ]
        for value, _what in sequence:
            producer.produce(readings, value, pump.encode(), partition=0)
        assert producer.flush(15) == 0
    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    await run_until(runtime, done=len(sequence))
    assert runtime.metrics.records_written == 5  # the good readings, and nothing else
    got = export(f'{{device="{pump}"}}', 5)
    [(_labels, samples)] = got.items()
    assert samples == [(TS // 1000 + i, 20.0 + i) for i in range(5)]

    letters = sorted(dead_letters(config, unique_name, 7), key=lambda d: d["offset"])
    reasons = [(d["offset"], d["error_type"], d["error"][:60]) for d in letters]
    assert [offset for offset, _, _ in reasons] == [1, 3, 5, 6, 7, 8, 9], reasons
    assert f"schema id {json_id}" in letters[0]["error"] and "JSON, not AVRO" in letters[0]["error"]
    assert letters[1]["value_truncated"] and letters[1]["value_size"] == len(huge)
    assert len(letters[1]["value"]) == 256 * 1024
    assert "cannot store NaN or infinite" in letters[2]["error"]
    assert "more than 2 days ahead" in letters[3]["error"]
    assert "never set" in letters[4]["error"] and "never set" in letters[5]["error"]
    assert letters[6]["error"].startswith("null value (a tombstone)")


async def test_wrong_url_stops_at_start(unique_name: str) -> None:
    unreachable = sink_config(f"{unique_name}.", url="http://127.0.0.1:1")
    unreachable = unreachable.model_copy(
        update={"sinks": unreachable.sinks.model_copy(update={"startup_timeout_s": 0.5})}
    )
    with pytest.raises(
        ConfigError,
        match=r"^sinks\.victoriametrics\.url: cannot reach http://127\.0\.0\.1:1/api/v1/import",
    ):
        await SinkRuntime(unreachable, "victoriametrics", group_id=unique_name, health_port=0).run()
    wrong_path = sink_config(f"{unique_name}.", url=f"{VM}/no/such/prefix")
    with pytest.raises(
        ConfigError,
        match=r"^sinks\.victoriametrics\.url: .* refused an empty write with 400: .*unsupported path",
    ):
        await SinkRuntime(wrong_path, "victoriametrics", group_id=unique_name, health_port=0).run()


async def test_refused_credentials_stop_at_start(unique_name: str) -> None:
    config = load_config(data={"sinks": {"victoriametrics": {"health_port": 0}}})
    server = web.Application()

    async def refuse(_request: web.Request) -> web.Response:
        return web.Response(status=401, text="Unauthorized")

    server.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        settings = config.sinks.victoriametrics.model_copy(update={"url": url})
        config = config.model_copy(
            update={"sinks": config.sinks.model_copy(update={"victoriametrics": settings})}
        )
        with pytest.raises(ConfigError, match=r"^sinks\.victoriametrics\.auth: .* answered 401"):
            await SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0).run()
    finally:
        await runner.cleanup()


def test_sigterm_writes_commits_and_exits_cleanly(unique_name: str, tmp_path: Path) -> None:
    """`sentio sink victoriametrics` under SIGTERM: what it consumed is written and committed."""
    prefix = f"{unique_name}."
    config = sink_config(prefix)
    create_topics(config, ("readings", "deadletter"))
    device = f"{unique_name}-pump"
    publish(
        config, [("readings", reading(device, TS + n * 1000, 10.0 + n, None)) for n in range(3)]
    )
    path = tmp_path / "sentio.yaml"
    path.write_text(
        f"topics: {{prefix: '{prefix}', partitions: 2}}\n"
        "sinks: {batch_timeout_s: 0.2, victoriametrics: {health_port: 0}}\n"
    )
    command = [
        str(Path(sys.executable).parent / "sentio"),
        "sink",
        "victoriametrics",
        "-c",
        str(path),
    ]
    process = subprocess.Popen(
        [*command, "--group-id", unique_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        got = export(f'{{device="{device}"}}', 3)
        assert [v for series in got.values() for _ts, v in series] == [10.0, 11.0, 12.0]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "stopping (SIGTERM)" in output
    assert "stopped: 3 record(s) written to victoriametrics" in output

    topic = spec("readings").topic(config.topics)
    consumer = Consumer(consumer_config(config.kafka, unique_name))
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed]
    finally:
        consumer.close()
    # an empty partition has nothing to commit (-1001: no offset)
    assert [max(tp.offset, 0) for tp in committed] == ends and sum(ends) == 3


async def test_lag_reaches_zero_past_transaction_markers(unique_name: str) -> None:
    """Records written in transactions: once everything is written, the sink's committed
    offsets reach the end of each partition, markers included, so its group's lag is 0."""
    config = sink_config(f"{unique_name}.")
    create_topics(config, ("readings", "deadletter"))
    device = f"{unique_name}-pump"
    publish_in_transactions(
        config, [reading(device, TS + n * 1000, float(n), None) for n in range(4)]
    )
    topic = spec("readings").topic(config.topics)
    probe = Consumer(consumer_config(config.kafka, unique_name))
    partitions = [TopicPartition(topic, p) for p in range(2)]
    ends = [probe.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    assert sum(ends) == 8  # 4 records and 4 markers

    def committed() -> list[int]:
        return [max(tp.offset, 0) for tp in probe.committed(partitions, timeout=10)]

    async def caught_up() -> None:
        deadline = time.monotonic() + 15
        while committed() != ends:
            assert time.monotonic() < deadline, f"committed {committed()}, ends {ends}"
            await asyncio.sleep(0.3)

    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    try:
        await run_until(runtime, 4, check=caught_up)
        assert committed() == ends
    finally:
        probe.close()
    got = export(f'sentio_temperature{{device="{device}"}}', 4)
    assert [v for series in got.values() for _ts, v in series] == [0.0, 1.0, 2.0, 3.0]


async def test_two_processes_share_the_partitions(unique_name: str) -> None:
    """Two sinks in one group split the partitions; together they write every sample."""
    config = sink_config(f"{unique_name}.")
    admin = admin_client(config.kafka)
    topics = [
        NewTopic(f"{unique_name}.readings", 4, 1),
        NewTopic(f"{unique_name}.deadletter", 1, 1),
    ]
    for future in admin.create_topics(topics).values():
        future.result(timeout=15)
    first = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    second = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    readings_topic = f"{unique_name}.readings"
    try:
        deadline = time.monotonic() + 45
        while True:
            held = [
                [p for t, p in await runtime.assigned() if t == readings_topic]
                for runtime in (first, second)
            ]
            if all(held) and sorted(held[0] + held[1]) == [0, 1, 2, 3]:
                break
            assert time.monotonic() < deadline, f"partitions never split: {held}"
            await asyncio.sleep(0.2)
        devices = [f"{unique_name}-d{n}" for n in range(8)]  # keys spread over the partitions
        publish(
            config,
            [
                ("readings", reading(device, TS + n * 1000, float(n), None))
                for n in range(50)
                for device in devices
            ],
        )
        deadline = time.monotonic() + 45
        while first.metrics.records_written + second.metrics.records_written < 400:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        for runtime, task in ((second, tasks[1]), (first, tasks[0])):  # signal handlers: LIFO
            runtime.stop()
            await asyncio.wait_for(task, 30)
    assert first.metrics.records_written > 0 and second.metrics.records_written > 0
    assert first.metrics.records_written + second.metrics.records_written == 400
    got = export(f'sentio_temperature{{device=~"{unique_name}-d.*"}}', 400)
    ms = TS // 1000
    assert {dict(k)["device"]: v for k, v in got.items()} == {
        device: [(ms + n, float(n)) for n in range(50)] for device in devices
    }
