"""Alertmanager silences on the secure stack: the API relays them, each worker in its role.

The module starts its own secure Kafka and secure Alertmanager with the stack's code
(``Stack(..., secure=True, only={"kafka", "alertmanager"})``) on free ports, in its own home
(the shared stack's Kafka jars and binaries linked in); the schema registry is the shared
stack's. The alerts agent runs in a real stream worker with the ``streams`` role, the
Alertmanager sink with ``sink``, the API with ``api``, events are produced with
``producer`` and read back with ``admin``: only the API may write ``alert-commands``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, Producer
from silences import silence_device
from stream_worker import WorkerProcess, free_port

from sentio_iot.api.app import create_app
from sentio_iot.api.commands import AlertCommands
from sentio_iot.api.server import serving
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import ConnectError
from sentio_iot.kafka import consumer_config, producer_config
from sentio_iot.records import now_us
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.stack import Stack
from sentio_iot.stack.alertmanager_secure import SecureAlertmanagerFiles
from sentio_iot.stack.kafka_secure import KafkaAccess, SecureKafkaFiles

pytestmark = pytest.mark.timeout(300)


@dataclass
class SecureAlerting:
    stack: Stack
    name: str  # topic prefix (with a dot), app id and Alertmanager's `sentio` label
    home: Path
    base: dict[str, Any]  # the configuration every role shares
    kafka_files: SecureKafkaFiles
    bootstrap: str
    am_url: str
    am_auth: tuple[str, str]

    def config(self, role: str) -> SentioConfig:
        return load_config(data={**self.base, "kafka": self.kafka_fields(role)})

    def kafka_fields(self, role: str) -> dict[str, Any]:
        return dict(self.kafka_files.client_fields(role, self.bootstrap))

    def topic(self, catalog_name: str) -> str:
        return f"{self.name}.{catalog_name}"


@pytest.fixture(scope="module")
def secure(
    sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureAlerting]:
    home = tmp_path_factory.mktemp("secure-alerting")
    shared = sentio_config.stack
    jars = shared.home / f"kafka-{shared.kafka_version}"
    (home / jars.name).symlink_to(jars, target_is_directory=True)
    (home / "bin").symlink_to(shared.home / "bin", target_is_directory=True)
    settings = shared.model_copy(
        update={
            "home": home,
            "kafka_port": free_port(),
            "kafka_controller_port": free_port(),
            "alertmanager_port": free_port(),
        }
    )
    name = f"rel{uuid.uuid4().hex[:8]}"
    stack = Stack(
        settings,
        secure=True,
        access=KafkaAccess(f"{name}.", name),
        only={"kafka", "alertmanager"},
    )
    stack.up(progress=lambda _line: None)
    am_url = f"http://127.0.0.1:{settings.alertmanager_port}"
    password = SecureAlertmanagerFiles(stack.paths).password()
    base = {
        "stack": settings.model_dump(mode="json"),
        "schema_registry": {"url": sentio_config.schema_registry.url},
        "topics": {"prefix": f"{name}.", "partitions": 1},
        "streams": {
            "app_id": name,
            "state_dir": str(home / "streams"),
            "batch_within_s": 0.2,
            "alerts": {"check_interval_s": 1},
        },
        "api": {"state_dir": str(home / "api")},
        "sinks": {
            "batch_timeout_s": 0.2,
            "retry_backoff_initial_s": 0.5,
            "retry_backoff_max_s": 3.0,
            "alertmanager": {
                "url": am_url,
                "auth": {"basic_auth": f"sentio:{password}"},
                "health_port": 0,
                "resend_interval_s": 1,
                "firing_ttl_s": 30,
            },
        },
    }
    found = SecureAlerting(
        stack,
        name,
        home,
        base,
        SecureKafkaFiles(stack.paths),
        f"127.0.0.1:{settings.kafka_port}",
        am_url,
        ("sentio", password),
    )
    try:
        from sentio_iot.topic_admin import apply_topics

        apply_topics(found.config("admin"))
        yield found
    finally:
        stack.down()


def offline_event(device: str, ts: int) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": ts,
        "kind": "OFFLINE",
        "message": "no reading for 30 s",
        "source": "streams",
        "details": {},
        "labels": {"kind": "pump", "site": "north"},
    }


def produce(
    secure: SecureAlerting,
    role: str,
    catalog_name: str,
    record_name: str,
    key: str,
    record: dict[str, Any],
) -> KafkaError | None:
    """Send one record with ``role``'s credentials: the delivery error, or None."""
    config = secure.config(role)
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, secure.topic(catalog_name), record_name)
        serde.register()
        value = serde.encode(record)
    errors: list[KafkaError | None] = []
    producer = Producer(producer_config(config.kafka, **{"linger.ms": 0}))
    producer.produce(
        secure.topic(catalog_name),
        key=key.encode(),
        value=value,
        on_delivery=lambda error, _message: errors.append(error),
    )
    assert producer.flush(30) == 0
    return errors[0]


def read_all(secure: SecureAlerting, catalog_name: str, record_name: str) -> list[dict[str, Any]]:
    """Every record of the topic so far, read with the admin role (read_committed)."""
    config = secure.config("admin")
    consumer = Consumer(consumer_config(config.kafka, f"sentio-test-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([secure.topic(catalog_name)])
    out: list[dict[str, Any]] = []
    quiet_since = time.monotonic()
    try:
        with SchemaRegistry(config.schema_registry) as registry:
            serde = AvroSerde(registry, secure.topic(catalog_name), record_name)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and time.monotonic() - quiet_since < 4:
                message = consumer.poll(0.3)
                if message is None or message.error():
                    continue
                quiet_since = time.monotonic()
                out.append(serde.decode(message.value()))
    finally:
        consumer.close()
    return out


async def wait_for(check: Any, what: str, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)
    return found


async def test_a_silence_in_alertmanager_acknowledges_the_alert_with_role_credentials(
    secure: SecureAlerting,
) -> None:
    config_path = secure.home / "streams.yaml"
    config_path.write_text(yaml.safe_dump({**secure.base, "kafka": secure.kafka_fields("streams")}))
    worker = WorkerProcess(config_path, free_port(), "alerts", secure.home / "worker.log")
    sink = SinkRuntime(
        secure.config("sink"),
        "alertmanager",
        group_id=f"{secure.name}.sink-alertmanager",
        health_port=0,
    )
    sink_task = asyncio.create_task(sink.run())
    relay = serving(create_app(secure.config("api")))
    api_url = relay.__enter__()
    am = httpx.AsyncClient(base_url=secure.am_url, auth=secure.am_auth, timeout=10)
    try:
        await asyncio.to_thread(worker.start, 120.0)
        device, t0 = "pump-7", now_us()
        error = await asyncio.to_thread(
            produce,
            secure,
            "producer",
            "device-events",
            "DeviceEvent",
            device,
            offline_event(device, t0),
        )
        assert error is None
        alert_id = f"{device}/device_offline/{t0}"
        pipeline = {"filter": f'sentio="{secure.name}"'}

        async def in_alertmanager() -> bool:
            held = (await am.get("/api/v2/alerts", params=pipeline)).json()
            return any(a["labels"].get("alert_id") == alert_id for a in held)

        await wait_for(in_alertmanager, "the sink to post the alert to Alertmanager")
        silence_id = await silence_device(am, device, by="maria", comment="pump swap")

        async def acknowledged() -> list[dict[str, Any]]:
            alerts = await asyncio.to_thread(read_all, secure, "alerts", "Alert")
            return alerts if alerts and alerts[-1]["status"] == "ACKNOWLEDGED" else []

        alerts = await wait_for(acknowledged, "the alert ACKNOWLEDGED on the alerts topic")
        assert [(a["alert_id"], a["status"]) for a in alerts] == [
            (alert_id, "FIRING"),
            (alert_id, "ACKNOWLEDGED"),
        ]
        await asyncio.sleep(3)  # relay and re-sends later: no second ack, no silence of ours
        commands = await asyncio.to_thread(read_all, secure, "alert-commands", "AlertCommand")
        assert [
            (c["device_id"], c["type"], c["action"], c["alert_id"], c["user"], c["comment"])
            for c in commands
        ] == [
            (
                device,
                "device_offline",
                "ACK",
                alert_id,
                "maria",
                f"silenced in Alertmanager (silence {silence_id}): pump swap",
            )
        ]
        silences = (await am.get("/api/v2/silences", params=pipeline)).json()
        assert silences == []  # the sink adopted maria's silence
        assert '{what="silences_adopted"} 1' in sink.writer.metrics_text()
        metrics = (await asyncio.to_thread(httpx.get, f"{api_url}/metrics")).text
        assert "\nsentio_api_alertmanager_acks_total 1\n" in metrics, metrics
        assert not sink_task.done()
    finally:
        await am.aclose()
        await asyncio.to_thread(relay.__exit__, None, None, None)
        sink.stop()
        await asyncio.wait_for(sink_task, 30)
        worker.stop()
        worker.kill()


def test_the_sink_role_cannot_write_alert_commands(secure: SecureAlerting) -> None:
    """Neither a raw producer nor the API's own command writer with the sink's (or the
    admin's) credentials: the refusal is an error, never a command taken for sent."""
    record = {
        "command_id": uuid.uuid4().hex,
        "device_id": "pump-8",
        "type": "device_offline",
        "action": "ACK",
        "alert_id": None,
        "ts": now_us(),
        "user": "mallory",
        "comment": "",
    }
    error = produce(secure, "sink", "alert-commands", "AlertCommand", "pump-8", record)
    assert error is not None and error.name() == "TOPIC_AUTHORIZATION_FAILED"
    # sink: may not describe the topic; admin: may, but a DENY refuses its writes
    for role in ("sink", "admin"):
        commands = AlertCommands(secure.config(role))
        with pytest.raises(ConnectError) as refused:
            commands.send("pump-8", "device_offline", "ACK", "mallory", None, "")
        commands.close()
        assert str(refused.value).startswith(
            f"Kafka at {secure.bootstrap} refused {role!r} access to topic "
            f"{secure.topic('alert-commands')}: TOPIC_AUTHORIZATION_FAILED (fix: give this worker"
        )
    users = [c["user"] for c in read_all(secure, "alert-commands", "AlertCommand")]
    assert "mallory" not in users
