"""`sentio stack up --secure`: each role's credentials do their job and nothing else.

The module starts its own secure Kafka with the stack's code (``Stack(..., secure=True,
only={"kafka"})``) on free ports, in its own home (the shared stack's jars linked in), and never
touches the shared broker. Real clients only: confluent-kafka for producers, sinks, the API and
the admin; a real `sentio stream worker` (Faust on aiokafka) with the streams role.
"""

from __future__ import annotations

import logging
import re
import signal
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from stream_worker import SENTIO, WorkerProcess, free_port

from sentio_iot.config import KafkaSettings, SentioConfig, load_config
from sentio_iot.errors import EXIT_ACCESS_REFUSED
from sentio_iot.kafka import consumer_config, producer_config
from sentio_iot.records import Metric, Reading, now_us
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.stack import Stack
from sentio_iot.stack.kafka_secure import KafkaAccess, SecureKafkaFiles

TOPICS = (
    "readings",
    "rollups",
    "anomalies",
    "rul",
    "device-events",
    "alerts",
    "alert-commands",
    "deadletter",
    "otlp-spans",
)
CAN_WRITE = {
    "producer": {"readings", "device-events", "deadletter", "otlp-spans"},
    "streams": {
        "rollups",
        "anomalies",
        "rul",
        "device-events",
        "alerts",
        "deadletter",
        "otlp-spans",
    },
    "sink": {"deadletter", "otlp-spans"},
    "api": {"alert-commands", "otlp-spans"},
    "admin": set(TOPICS) - {"alert-commands"},
}
CAN_READ = {
    "producer": set(),
    "streams": {
        "readings",
        "alert-commands",
        "rollups",
        "anomalies",
        "rul",
        "device-events",
        "alerts",
    },
    "sink": set(TOPICS),
    "api": {"readings", "anomalies", "alerts", "rul", "device-events", "alert-commands"},
    "admin": set(TOPICS),
}
DENIED = "TOPIC_AUTHORIZATION_FAILED"
LOG = logging.getLogger(__name__)
DEVICES = (b"pump-1", b"pump-2")


@dataclass
class SecureKafka:
    stack: Stack
    files: SecureKafkaFiles
    bootstrap: str
    prefix: str
    app_id: str
    home: Path
    progress: list[str]
    config_path: Path

    def settings(self, role: str, **changes: Any) -> KafkaSettings:
        return KafkaSettings(**{**self.files.client_fields(role, self.bootstrap), **changes})

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def env(self, role: str) -> dict[str, str]:
        """The role's `clients/<role>.env`, read as a shell's `set -a; . file` would."""
        out = subprocess.run(
            ["bash", "-c", f'set -a; . "{self.files.clients}/{role}.env"; env -0'],
            capture_output=True,
            check=True,
        )
        pairs = (item.split(b"=", 1) for item in out.stdout.split(b"\0") if b"=" in item)
        return {k.decode(): v.decode() for k, v in pairs}

    def sentio(self, role: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SENTIO, *args, "-c", str(self.config_path)],
            env={**self.env(role), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def kafka(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureKafka]:
    home = tmp_path_factory.mktemp("secure-stack")
    shared = sentio_config.stack
    jars = shared.home / f"kafka-{shared.kafka_version}"
    (home / jars.name).symlink_to(jars, target_is_directory=True)
    port = free_port()
    settings = shared.model_copy(
        update={"home": home, "kafka_port": port, "kafka_controller_port": free_port()}
    )
    name = f"sec{uuid.uuid4().hex[:8]}"
    access = KafkaAccess(f"{name}.", name)
    stack = Stack(settings, secure=True, access=access, only={"kafka"})
    progress: list[str] = []
    stack.up(progress=progress.append)
    config_path = home / "sentio.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "schema_registry": {"url": sentio_config.schema_registry.url},
                "topics": {"prefix": f"{name}.", "partitions": 2},
                "streams": {"app_id": name, "state_dir": str(home / "streams")},
            }
        )
    )
    broker = SecureKafka(
        stack,
        SecureKafkaFiles(stack.paths),
        f"127.0.0.1:{port}",
        f"{name}.",
        name,
        home,
        progress,
        config_path,
    )
    try:
        applied = broker.sentio("admin", "topics", "apply")
        assert applied.returncode == 0, applied.stderr
        yield broker
    finally:
        stack.down()


def test_secure_up_answers_only_over_sasl_ssl_and_keeps_every_secret_private(
    kafka: SecureKafka,
) -> None:
    [status] = kafka.stack.status()
    assert status.healthy and status.detail.startswith("SASL_SSL; 1 broker(s)")
    files = kafka.files
    secret_files = [
        *files.credentials.glob("*.password"),
        *files.clients.glob("*"),
        files.tls / "ca.key",
        files.broker_keystore,
        kafka.stack.paths.conf / "kafka-server.properties",
    ]
    assert len(list(files.credentials.glob("*.password"))) == 6  # 5 roles + the broker
    assert len(list(files.clients.glob("*"))) == 10
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (files.root, files.tls, files.credentials, files.clients):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    passwords = [p.read_text().strip() for p in files.credentials.glob("*.password")]
    assert all(len(p) == 32 for p in passwords)
    said = "\n".join(kafka.progress)
    broker_log = kafka.stack.paths.log("kafka").read_text()
    assert "SASL_SSL (SCRAM-SHA-512)" in said and f"{files.clients}/<role>.env" in said
    assert not [p for p in passwords if p in said or p in broker_log]


@pytest.mark.parametrize("role", sorted(CAN_WRITE))
def test_each_role_writes_its_topics_and_is_refused_the_others(
    kafka: SecureKafka, role: str
) -> None:
    outcome: dict[str, str | None] = {}

    def delivered(error: KafkaError | None, message: Any) -> None:
        outcome[message.topic()[len(kafka.prefix) :]] = error.name() if error else None

    producer = Producer(producer_config(kafka.settings(role), **{"message.timeout.ms": 15000}))
    for name in TOPICS:
        producer.produce(kafka.topic(name), key=b"k", value=b"v", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert outcome == {n: None if n in CAN_WRITE[role] else DENIED for n in TOPICS}


@pytest.mark.parametrize("role", sorted(CAN_READ))
def test_each_role_reads_its_topics_and_is_refused_the_others(
    kafka: SecureKafka, role: str
) -> None:
    consumer = Consumer(
        consumer_config(kafka.settings(role), f"unused-{role}", **{"enable.partition.eof": True})
    )
    try:
        outcome = read_answers(consumer, {kafka.topic(n): n for n in TOPICS})
    finally:
        consumer.close()
    assert outcome == {n: None if n in CAN_READ[role] else DENIED for n in TOPICS}


def read_answers(consumer: Consumer, names: dict[str, str]) -> dict[str, str | None]:
    """Per topic: None when partition 0 gave a record or its end, else the refusal's name.

    A topic the role may not even describe is refused in its metadata; the others are
    fetched together and each answers with its first record, its end, or a fetch error.
    """
    metadata = consumer.list_topics(timeout=10).topics
    answers: dict[str, str | None] = {}
    for topic, name in names.items():
        if topic not in metadata or metadata[topic].error is not None:
            refused = consumer.list_topics(topic, timeout=10).topics[topic].error
            answers[name] = str(refused.name()) if refused is not None else "not listed"
    visible = [t for t, n in names.items() if n not in answers]
    consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in visible])
    deadline = time.monotonic() + 20
    while any(names[t] not in answers for t in visible) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.topic() not in visible:
            continue  # nothing yet, or the unused group's coordinator lookup
        error = message.error()
        ok = error is None or error.code() == KafkaError._PARTITION_EOF
        answers.setdefault(names[message.topic()], None if ok else str(error.name()))
    return {n: answers.get(n, "no answer") for n in names.values()}


@pytest.mark.parametrize(
    ("role", "own_group", "foreign_group"),
    [
        ("streams", "{app}", "{prefix}sink-victoriametrics"),
        ("sink", "{prefix}sink-victoriametrics", "{app}"),
        ("api", "sentio-api-views", "{app}"),
        ("admin", "sentio-topics-list", "{app}"),
    ],
)
def test_each_role_joins_its_own_consumer_groups_only(
    kafka: SecureKafka, role: str, own_group: str, foreign_group: str
) -> None:
    def join(group: str) -> str | None:
        """None once the group assigned a partition; else the refusal's name."""
        group = group.format(app=kafka.app_id, prefix=kafka.prefix)
        consumer = Consumer(consumer_config(kafka.settings(role), group))
        assigned: list[TopicPartition] = []
        consumer.subscribe(
            [kafka.topic("readings")], on_assign=lambda _c, parts: assigned.extend(parts)
        )
        deadline = time.monotonic() + 20
        try:
            while not assigned and time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is not None and message.error() is not None:
                    return str(message.error().name())
        finally:
            consumer.close()
        return None if assigned else "no answer"

    assert join(own_group) is None
    assert join(foreign_group) == "GROUP_AUTHORIZATION_FAILED"


def test_transactional_ids_belong_to_the_stream_workers(kafka: SecureKafka) -> None:
    def init(role: str, transactional_id: str) -> str | None:
        producer = Producer(
            producer_config(kafka.settings(role), **{"transactional.id": transactional_id})
        )
        try:
            producer.init_transactions(20)
        except KafkaException as exc:
            return str(exc.args[0].name())
        return None

    assert init("streams", f"{kafka.app_id}-readings-0") is None
    assert init("streams", "someone-else-0") == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    assert init("producer", f"{kafka.app_id}-readings-0") == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"


def test_plaintext_anonymous_and_certificate_less_clients_are_refused(
    kafka: SecureKafka,
) -> None:
    controller = kafka.stack.settings.kafka_controller_port
    attempts = {
        "plaintext": {"bootstrap.servers": kafka.bootstrap},
        "TLS without a login": {
            "bootstrap.servers": kafka.bootstrap,
            "security.protocol": "ssl",
            "ssl.ca.location": str(kafka.files.ca_file),
        },
        "controller without a certificate": {
            "bootstrap.servers": f"127.0.0.1:{controller}",
            "security.protocol": "ssl",
            "ssl.ca.location": str(kafka.files.ca_file),
        },
    }
    refused = {}
    for what, config in attempts.items():
        try:
            AdminClient({**config, "logger": LOG}).list_topics(timeout=2)
        except KafkaException as exc:
            refused[what] = exc.args[0].name()
    assert refused == dict.fromkeys(attempts, "_TRANSPORT")


def test_the_cli_runs_with_a_role_env_file_and_a_wrong_password_is_one_line(
    kafka: SecureKafka,
) -> None:
    listed = kafka.sentio("admin", "topics", "list")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()[1:]) == sorted(
        kafka.topic(n) for n in TOPICS
    )
    wrong = "Not-the-Password-42"
    refused = kafka.sentio("admin", "topics", "list", SENTIO_KAFKA__SASL_PASSWORD=wrong)
    assert refused.returncode == EXIT_ACCESS_REFUSED  # 77
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith(
        f"error: cannot reach Kafka at {kafka.bootstrap}: it refused the login of 'admin': "
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512 (fix: check kafka.sasl_username and kafka.sasl_password"
    )
    assert wrong not in refused.stdout + refused.stderr


def test_the_api_with_its_role_acknowledges_an_alert_on_alert_commands(
    kafka: SecureKafka, sentio_config: SentioConfig
) -> None:
    """The API (in this process, the `api` role's settings) sees an alert on `alerts` and writes
    the operator's acknowledgement to `alert-commands`, which the stream workers read.

    It runs before the stream worker's test: once, run after it, the alert did not reach the
    views within 60 s (not explained yet; a transaction left open by the stopped worker would
    hold back the views' read_committed consumer until the broker aborts it)."""
    from pydantic import SecretStr

    from sentio_iot.api.app import create_app
    from sentio_iot.api.roles import Role
    from sentio_iot.api.server import serving

    alert = {
        "alert_id": "a-1",
        "device_id": "press-9",
        "type": "device_offline",
        "severity": "MAJOR",
        "status": "FIRING",
        "start_ts": now_us(),
        "end_ts": None,
        "ack_ts": None,
        "count": 1,
        "message": "no reading for 30 s",
        "details": {},
        "labels": {"tenant": "acme"},
    }
    with SchemaRegistry(sentio_config.schema_registry) as registry:
        alerts = AvroSerde(registry, kafka.topic("alerts"), "Alert")
        alerts.register()
        producer = Producer(producer_config(kafka.settings("streams")))
        producer.produce(
            kafka.topic("alerts"), key=b"press-9/device_offline", value=alerts.encode(alert)
        )
        assert producer.flush(30) == 0
        commands = AvroSerde(registry, kafka.topic("alert-commands"), "AlertCommand")
        data = yaml.safe_load(kafka.config_path.read_text())
        data["kafka"] = kafka.files.client_fields("api", kafka.bootstrap)
        data["api"] = {"state_dir": str(kafka.home / "api")}
        app = create_app(load_config(data=data))
        app.state.services.users.add("olga", SecretStr("a-long-password-1"), Role.OPERATOR, ("*",))
        with serving(app) as url:
            login = {"username": "olga", "password": "a-long-password-1"}
            access = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
            headers = {"Authorization": f"Bearer {access}"}
            ack = f"{url}/api/v1/alerts/press-9/device_offline/acknowledge"
            deadline = time.monotonic() + 60
            while (sent := httpx.post(ack, headers=headers, json={})).status_code == 404:
                assert time.monotonic() < deadline, sent.text  # the views are still filling
                time.sleep(0.3)
        assert sent.status_code == 202, sent.text
        written = topic_values(kafka, ("alert-commands",))["alert-commands"]
        decoded = [commands.decode(v) for v in written if v != b"v"]
    assert [(c["device_id"], c["action"], c["user"]) for c in decoded] == [
        ("press-9", "ACK", "olga")
    ]


def test_a_stream_worker_with_the_streams_role_reads_readings_and_writes_events(
    kafka: SecureKafka, sentio_config: SentioConfig
) -> None:
    """Faust on aiokafka over SASL_SSL: its group, changelogs and transactions are allowed."""
    snippet = yaml.safe_load((kafka.files.clients / "streams.yaml").read_text())
    data = yaml.safe_load(kafka.config_path.read_text())
    data["kafka"] = snippet["kafka"]
    data["streams"]["device_state"] = {"offline_after_s": 2, "check_interval_s": 0.5}
    config_path = kafka.home / "streams.yaml"
    config_path.write_text(yaml.safe_dump(data))
    port = free_port()
    worker = WorkerProcess(config_path, port, "device_state", kafka.home / "worker.log")
    try:
        worker.start(ready_timeout_s=90)
        with SchemaRegistry(sentio_config.schema_registry) as registry:
            readings = AvroSerde(registry, kafka.topic("readings"), "Reading")
            readings.register()
            producer = Producer(producer_config(kafka.settings("producer")))
            for device in ("pump-1", "pump-2"):
                reading = Reading(device, now_us(), [Metric("temp", 20.0, "degC")], "modbus", {})
                producer.produce(
                    kafka.topic("readings"),
                    key=device.encode(),
                    value=readings.encode(reading.to_record()),
                )
            assert producer.flush(30) == 0
            events = AvroSerde(registry, kafka.topic("device-events"), "DeviceEvent")
            seen = read_events(kafka, events)
        assert sorted(seen) == [("pump-1", "OFFLINE"), ("pump-2", "OFFLINE")]
        assert worker.stop() == 0
        text = worker.log(tail=1_000_000)
        assert kafka.files.password("streams") not in text
        assert "AUTHORIZATION_FAILED" not in text and "AuthorizationFailed" not in text
    finally:
        worker.kill()


def read_events(kafka: SecureKafka, serde: AvroSerde) -> list[tuple[str, str]]:
    """The device events, read with the sink role and its group, read_committed."""
    group = f"{kafka.prefix}sink-loki"
    consumer = Consumer(consumer_config(kafka.settings("sink"), group))
    consumer.subscribe([kafka.topic("device-events")])
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 60
    try:
        while len(seen) < 2 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.key() not in DEVICES:
                continue  # the write test's b"v" values are on the topic too
            seen.append((message.key().decode(), serde.decode(message.value())["kind"]))
    finally:
        consumer.close()
    return seen


def test_sentio_produce_with_the_producer_env_publishes_every_reading(
    kafka: SecureKafka, sentio_config: SentioConfig
) -> None:
    data = yaml.safe_load(kafka.config_path.read_text())
    data["producer"] = {
        "buffer_dir": str(kafka.home / "buffer"),
        "health_port": free_port(),
    }
    data["producers"] = {"simulate": [{"devices": 2, "rate": 20, "seed": 3}]}
    config_path = kafka.home / "produce.yaml"
    config_path.write_text(yaml.safe_dump(data))
    produced = subprocess.run(
        [SENTIO, "produce", "simulate", "-c", str(config_path), "--duration", "4"],
        env=kafka.env("producer"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr
    totals = re.search(r"stopped: \d+ reading\(s\) polled, (\d+) published", produced.stderr)
    assert totals is not None, produced.stderr
    assert "AUTHORIZATION_FAILED" not in produced.stderr
    assert kafka.files.password("producer") not in produced.stdout + produced.stderr
    with SchemaRegistry(sentio_config.schema_registry) as registry:
        serde = AvroSerde(registry, kafka.topic("readings"), "Reading")
        # the stream worker test's two readings are on the topic too
        devices = [d for d in read_readings(kafka, serde) if d.encode() not in DEVICES]
    assert len(devices) == int(totals[1]) > 0
    assert len(set(devices)) == 2


def read_readings(kafka: SecureKafka, serde: AvroSerde) -> list[str]:
    """The device of every Avro reading on the topic (the write test's b"v" is skipped), read
    with the sink role until the end of each partition."""
    consumer = Consumer(
        consumer_config(
            kafka.settings("sink"), f"{kafka.prefix}sink-count", **{"enable.partition.eof": True}
        )
    )
    topic = kafka.topic("readings")
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    ended: set[int] = set()
    devices: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(ended) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition())
                continue
            if message.value() != b"v":
                devices.append(serde.decode(message.value())["device_id"])
    finally:
        consumer.close()
    return devices


VM_TOPICS = ("readings", "rollups", "anomalies", "rul", "alerts")


def test_sentio_sink_with_the_sink_env_writes_and_dead_letters_with_its_own_group(
    kafka: SecureKafka,
) -> None:
    """The VictoriaMetrics sink (the shared VictoriaMetrics; this module's unique devices) reads
    its five topics in its group and dead-letters the write test's b"v" values."""
    on_topics = topic_values(kafka, VM_TOPICS).values()
    garbage = sum(values.count(b"v") for values in on_topics)
    valid = sum(len(values) for values in on_topics) - garbage
    assert garbage >= 2 and valid > 0
    process = subprocess.Popen(
        [SENTIO, "sink", "victoriametrics", "-c", str(kafka.config_path), "--progress-every", "1"],
        env={**kafka.env("sink"), "SENTIO_SINKS__VICTORIAMETRICS__HEALTH_PORT": "0"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or ()), daemon=True)
    reader.start()
    wanted = f"({valid} in all), "
    deadline = time.monotonic() + 60
    try:
        while not any(wanted in line and f" {garbage} dead-lettered" in line for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    process.stderr.close()
    output = "".join(lines)
    assert re.search(
        rf"stopped: {valid} record\(s\) written to victoriametrics .* {garbage} dead-lettered",
        output,
    ), output
    assert f"group {kafka.prefix}sink-victoriametrics" in output
    assert "AUTHORIZATION_FAILED" not in output
    assert kafka.files.password("sink") not in output


def topic_values(kafka: SecureKafka, names: tuple[str, ...]) -> dict[str, list[bytes]]:
    """Every value on the topics, read with the admin role to the end of each partition."""
    consumer = Consumer(
        consumer_config(kafka.settings("admin"), "sentio-count", **{"enable.partition.eof": True})
    )
    topics = [kafka.topic(n) for n in names]
    metadata = consumer.list_topics(timeout=10).topics
    parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata[t].partitions]
    consumer.assign(parts)
    ended: set[tuple[str, int]] = set()
    values: dict[str, list[bytes]] = {n: [] for n in names}
    deadline = time.monotonic() + 30
    try:
        while len(ended) < len(parts) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    ended.add((message.topic(), message.partition()))
                continue
            values[message.topic()[len(kafka.prefix) :]].append(message.value())
    finally:
        consumer.close()
    assert len(ended) == len(parts)
    return values
