"""The README's main job, `sentio run`, end to end against the running stack: the plant, the
stream worker and the sinks as child processes, headless, with the numbers it reports
checked against what reached Kafka and VictoriaMetrics."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.kafka import admin_client, consumer_config, producer_config
from sentio_iot.pipeline.fresh import backlog, start_fresh
from sentio_iot.pipeline.lag import ConsumerLag
from sentio_iot.pipeline.main_job import run_dir
from sentio_iot.pipeline.results import ResultTail
from sentio_iot.pipeline.workers import missing_command
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import CATALOG
from sentio_iot.serde import AvroSerde
from sentio_iot.settings.sinks import SinkSettings
from sentio_iot.settings.streams import StreamSettings
from sentio_iot.topic_admin import apply_topics

DURATION_S = 60
DEVICES = 24  # --devices small: 6 of each kind (pump, motor, press, environment)
PUMPS = 6


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def own_run(monkeypatch: pytest.MonkeyPatch, unique_name: str, tmp_path: Path) -> Iterator[str]:
    """Topics, tenant, stream app, buffer and ports of this test only (other runs share the
    machine); the children inherit them through the environment. The run's folder in the
    stack's state (config, worker logs) goes afterwards."""
    producer, streams, vm, loki, tempo, api = free_ports(6)
    env = {
        "SENTIO_API__PORT": str(api),
        "SENTIO_API__STATE_DIR": str(tmp_path / "api"),
        "SENTIO_TOPICS__PREFIX": f"{unique_name}.",
        "SENTIO_TENANT": unique_name,
        "SENTIO_PRODUCER__BUFFER_DIR": str(tmp_path / "buffer"),
        "SENTIO_PRODUCER__HEALTH_PORT": str(producer),
    }
    sinks = SinkSettings()
    for backend, port in (("victoriametrics", vm), ("loki", loki), ("tempo", tempo)):
        if hasattr(getattr(sinks, backend, None), "health_port"):
            env[f"SENTIO_SINKS__{backend.upper()}__HEALTH_PORT"] = str(port)
    fields = StreamSettings.model_fields
    if "app_id" in fields:
        env["SENTIO_STREAMS__APP_ID"] = unique_name
    if "web_port" in fields:
        env["SENTIO_STREAMS__WEB_PORT"] = str(streams)
    if "state_dir" in fields:
        env["SENTIO_STREAMS__STATE_DIR"] = str(tmp_path / "streams")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield unique_name
    shutil.rmtree(run_dir(load_config()), ignore_errors=True)


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in:\n{text}"
    return float(found.group(1).replace(",", ""))


def series_count(vm: str, match: str) -> int:
    """How many series match, waiting a little for VictoriaMetrics to index the last writes."""
    deadline = time.monotonic() + 20
    now = time.time()
    while True:
        response = httpx.get(
            f"{vm}/api/v1/series",
            params={"match[]": match, "start": now - 6 * 3600, "end": now + 3600},
            timeout=10,
        )
        response.raise_for_status()
        count = len(response.json()["data"])
        if count or time.monotonic() >= deadline:
            return count
        time.sleep(1)


def logs_count(vl: str, query: str, expected: int) -> int:
    """How many log lines match, waiting a little for VictoriaLogs to make the last visible."""
    deadline = time.monotonic() + 20
    while True:
        response = httpx.post(
            f"{vl}/select/logsql/query", data={"query": f"{query} | stats count() n"}, timeout=10
        )
        response.raise_for_status()
        lines = response.text.strip().splitlines()
        count = int(json.loads(lines[0])["n"]) if lines else 0
        if count >= expected or time.monotonic() >= deadline:
            return count
        time.sleep(1)


@pytest.mark.timeout(300)
def test_sentio_run_headless_runs_the_pipeline_and_sums_it_up(
    own_run: str, sentio_config: SentioConfig, tmp_path: Path
) -> None:
    args = ["run", "--headless", "--devices", "small", "--duration", str(DURATION_S)]
    args += ["--count", "200"]
    result = CliRunner().invoke(cli, args)
    out = result.output

    assert "== round trip: 200/200 readings came back identical" in out, (out, result.exception)
    assert "== pipeline: producer, streams-1, sink-victoriametrics, sink-loki, sink-tempo" in out
    assert re.search(r"\[\s+\d+ s\] producer \d+/s", out), out  # headless progress lines
    # The API: its URL, and the first admin's password printed once and kept in a 0600 file.
    password_file = tmp_path / "api" / "first-admin-password"
    password = password_file.read_text().strip()
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert f"== API first admin: user admin, password {password} (shown this once" in out
    api_port = os.environ["SENTIO_API__PORT"]
    assert f"== API: http://127.0.0.1:{api_port}/api/docs" in out
    assert "== summary after " in out
    # ~1 reading/s from each of 24 devices for 60 s, less the producer's start-up.
    published = number(r"readings published: ([\d,]+)", out)
    assert DEVICES * (DURATION_S - 20) <= published <= DEVICES * (DURATION_S + 1), out
    assert re.search(r"stopped: producer \(pid \d+\) stopped in [\d.]+ s", out), out
    if "sink-alertmanager: " in out and "sink-alertmanager: unavailable" not in out:
        # The alerts that close the run (devices going offline) reach their sink while it
        # drains: the summary counts them (it said "0 processed" while reading totals early).
        alerts = number(r"alerts: (\d+)", out)
        assert number(r"sink-alertmanager: ([\d,]+) processed", out) >= alerts, out
    assert result.exit_code == 0, out

    if missing_command(("stream", "worker")) is None:
        assert number(r"rollups: (\d+)", out) > 0
        assert number(r"time to first rollup ([\d.]+) s", out) < 120
        assert "streams-1 (pid " in out
        agents = getattr(SentioConfig().streams, "agents", [])
        if "rul" in agents and importlib.util.find_spec("sentio_iot.streams.agents.rul"):
            assert number(r"RUL predictions: (\d+)", out) > 0
            assert number(r"first RUL prediction ([\d.]+) s", out) < 120
    else:
        assert "streams-1: unavailable: `sentio stream" in out

    if missing_command(("sink", "victoriametrics")) is None:
        vm = f"http://127.0.0.1:{sentio_config.stack.victoriametrics_port}"
        # Every pump's flow reached VictoriaMetrics, under this run's tenant only.
        assert series_count(vm, f'sentio_flow{{tenant="{own_run}"}}') == PUMPS, out
        if missing_command(("stream", "worker")) is None:
            rollups = f'sentio_flow_mean{{tenant="{own_run}",window="1m"}}'
            assert series_count(vm, rollups) == PUMPS, out

    if missing_command(("sink", "loki")) is None:
        vl = f"http://127.0.0.1:{sentio_config.stack.victorialogs_port}"
        # Each simulated device says it is online once, at the start.
        online = f'{{tenant="{own_run}",stream="device-events",event="ONLINE"}} "simulated"'
        assert logs_count(vl, online, DEVICES) == DEVICES, out


@pytest.fixture
def own_topics(unique_name: str) -> SentioConfig:
    config = load_config(data={"topics": {"prefix": f"{unique_name}."}})
    apply_topics(config)
    return config


def wait_until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_the_view_follows_results_from_its_start_only(own_topics: SentioConfig) -> None:
    config = own_topics
    topic = {spec.name: spec.topic(config.topics) for spec in CATALOG}
    producer = Producer(producer_config(config.kafka))
    with SchemaRegistry(config.schema_registry) as registry:
        anomalies = AvroSerde(registry, topic["anomalies"], "Anomaly")
        ruls = AvroSerde(registry, topic["rul"], "RulPrediction")
        alerts = AvroSerde(registry, topic["alerts"], "Alert")
        for serde in (anomalies, ruls, alerts):
            serde.register()

        def anomaly(device: str, value: float) -> bytes:
            record = {
                "device_id": device,
                "metric": "vibration",
                "ts": 1_700_000_000_000_000,
                "value": value,
                "score": 0.97,
                "threshold": 0.5,
                "expected": 2.5,
                "detector": "robust_zscore",
                "detector_version": "1",
            }
            return anomalies.encode(record)

        def rul(device: str, hours: float) -> bytes:
            record = {
                "device_id": device,
                "ts": 1_700_000_000_000_000,
                "rul": hours,
                "rul_unit": "hours",
                "model_name": "plant_pump",
                "model_version": "1",
                "window_size": 10,
            }
            return ruls.encode(record)

        producer.produce(topic["anomalies"], anomaly("before-start", 1.0), b"before-start")
        producer.flush(10)
        tail = ResultTail(config, time.monotonic(), f"{config.topics.prefix}view")
        tail.start()
        try:
            for number, value in enumerate((9.5, 9.75, 10.0)):
                device = f"pump-{number}"
                producer.produce(topic["anomalies"], anomaly(device, value), device.encode())
            for device, hours in (("pump-0", 30.0), ("pump-1", 4.5), ("pump-2", 12.0)):
                producer.produce(topic["rul"], rul(device, hours), device.encode())
            alert = {
                "alert_id": "a-1",
                "device_id": "pump-1",
                "type": "rul_low",
                "severity": "MAJOR",
                "status": "FIRING",
                "start_ts": 1_700_000_000_000_000,
                "message": "RUL 4.5 h below 6 h",
            }
            producer.produce(topic["alerts"], alerts.encode(alert), b"pump-1/rul_low")
            producer.flush(10)
            wait_until(lambda: sum(tail.results().counts.values()) >= 7)
            results = tail.results()
        finally:
            tail.close()
    assert results.counts == {"anomalies": 3, "rul": 3, "alerts": 1}
    assert set(results.first_s) == {"anomalies", "rul", "alerts"}
    # Keys spread over partitions: Kafka keeps no order between them.
    assert sorted(results.anomalies) == [
        f"pump-{n} vibration={v:.4g} (expected 2.5) score 0.97 [robust_zscore]"
        for n, v in enumerate((9.5, 9.75, 10.0))
    ]
    assert results.alerts == ["MAJOR FIRING pump-1 rul_low: RUL 4.5 h below 6 h"]
    assert results.closest == [
        ("pump-1", 4.5, "hours"),
        ("pump-2", 12.0, "hours"),
        ("pump-0", 30.0, "hours"),
    ]


def test_consumer_lag_is_end_minus_committed_per_active_group(
    own_topics: SentioConfig, unique_name: str
) -> None:
    config = own_topics
    readings = CATALOG[0].topic(config.topics)
    producer = Producer(producer_config(config.kafka))
    for number in range(10):
        producer.produce(readings, f"r{number}".encode(), partition=0)
    producer.flush(10)
    group = f"{unique_name}-group"
    consumer = Consumer(consumer_config(config.kafka, group))
    try:
        consumer.subscribe([readings])
        wait_until(lambda: consumer.poll(0.2) is not None or bool(consumer.assignment()))
        consumer.commit(offsets=[TopicPartition(readings, 0, 4)], asynchronous=False)
        lag = ConsumerLag(config)
        measured: dict[str, int] = {}

        def settled() -> bool:
            measured.update(lag.measure())
            return measured.get(group) == 6

        wait_until(settled)
    finally:
        consumer.close()
    # Only this group commits on this run's topics: 10 messages, 4 of them committed.
    assert measured == {group: 6}


def test_an_earlier_runs_backlog_is_measured_and_fresh_deletes_it(
    unique_name: str, tmp_path: Path
) -> None:
    config = load_config(
        data={
            "topics": {"prefix": f"{unique_name}."},
            "streams": {"app_id": f"{unique_name}-app", "state_dir": str(tmp_path / "state")},
        }
    )
    apply_topics(config)
    readings = CATALOG[0].topic(config.topics)
    changelog = f"{unique_name}-app-rollups-changelog"
    admin = admin_client(config.kafka)
    admin.create_topics([NewTopic(changelog, 1, 1)])[changelog].result(15)
    producer = Producer(producer_config(config.kafka))
    for number in range(25):
        producer.produce(readings, f"r{number}".encode(), partition=0)
    producer.flush(10)
    group = f"{unique_name}-app"  # the stream workers' group, stopped (no member left)
    consumer = Consumer(consumer_config(config.kafka, group))
    try:
        consumer.subscribe([readings])
        wait_until(lambda: consumer.poll(0.2) is not None or bool(consumer.assignment()))
        consumer.commit(offsets=[TopicPartition(readings, 0, 5)], asynchronous=False)
    finally:
        consumer.close()
    (tmp_path / "state" / f"{unique_name}-app" / "worker-6066").mkdir(parents=True)
    measured: dict[str, int] = {}
    wait_until(lambda: measured.update(backlog(config)) or measured.get(group) == 20)
    assert measured == {group: 20}  # an idle group counts: what the next run inherits

    said: list[str] = []
    start_fresh(config, said.append)
    left = [t for t in admin.list_topics(timeout=15).topics if t.startswith(unique_name)]
    assert left == []
    groups = [g.group_id for g in admin.list_consumer_groups().result(15).valid]
    assert group not in groups
    assert not (tmp_path / "state" / f"{unique_name}-app").exists()
    assert said[0].startswith("== fresh start: deleted 10 topic(s), 1 consumer group(s)")
    apply_topics(config)  # the run goes on: the catalog comes back, empty
    assert backlog(config) == {}
