"""The schema registry keeps every id across a restart, a crash and a restart of the stack.

A schema id travels in every message; a registry that forgot it would make every stored
message unreadable, or worse, read it with another schema that got the same id later. So:
register schemas (several subjects, two versions of one), write messages to Kafka, restart,
and expect every subject's versions with the same ids (the ccompat ``id``, which is Apicurio's
contentId, and the native globalId), every message decoding to what was written, and a new
schema getting a new id. The shared registry of the other tests is never touched: these
tests start their own instance (``RegistryService`` with its own port and data folder) and,
for the stack restart, a stack of their own (Kafka and registry, on the shared caches).
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from sentio_iot.config import KafkaSettings, SchemaRegistrySettings, SentioConfig, StackSettings
from sentio_iot.kafka import admin_client, consumer_config, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.stack import Stack
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.process import ProcessRecord, is_running, log_tail, spawn, wait_gone
from sentio_iot.stack.registry import APP_NAME, RegistryService

START_TIMEOUT_S = 120.0
TS = 1_795_000_000_000_000
Snapshot = dict[str, list[tuple[int, int, int]]]  # subject -> [(version, contentId, globalId)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class OwnRegistry:
    """One Apicurio Registry of this test: its own port and data folder, the shared install."""

    def __init__(self, shared: StackSettings, data_dir: Path) -> None:
        settings = shared.model_copy(update={"registry_port": free_port()})
        self.service = RegistryService(settings, StackPaths(shared.home), data_dir=data_dir)
        self.log_path = data_dir.parent / "registry.log"
        self.record: ProcessRecord | None = None

    @property
    def url(self) -> str:
        return self.service.address

    def start(self) -> float:
        """Start it and wait until it answers; the seconds that took."""
        started = time.monotonic()
        self.service.install(progress=lambda _line: None)  # the stack's cache: nothing to fetch
        self.service.prepare(progress=lambda _line: None)
        self.record = spawn(
            self.service.command(), log_path=self.log_path, cwd=self.service.data_dir
        )
        while not self.service.check().healthy:
            assert is_running(self.record), f"registry exited: {log_tail(self.log_path)}"
            assert time.monotonic() - started < START_TIMEOUT_S, log_tail(self.log_path)
            time.sleep(0.2)
        return time.monotonic() - started

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        assert self.record is not None and is_running(self.record)
        os.killpg(self.record.pid, signum)
        assert wait_gone(self.record, 30), "own registry did not exit"

    def close(self) -> None:
        if self.record is not None and is_running(self.record):
            self.stop(signal.SIGKILL)


@pytest.fixture
def own_registry(sentio_config: SentioConfig, tmp_path: Path) -> Iterator[OwnRegistry]:
    registry = OwnRegistry(sentio_config.stack, tmp_path / "registry")
    registry.start()
    try:
        yield registry
    finally:
        registry.close()


def snapshot(base_url: str) -> Snapshot:
    """Every subject with its versions' ids, from both APIs."""
    found: Snapshot = {}
    with httpx.Client(base_url=base_url, timeout=10) as http:
        subjects = http.get("/apis/ccompat/v7/subjects").raise_for_status().json()
        for subject in subjects:
            ids = []
            for version in http.get(f"/apis/ccompat/v7/subjects/{subject}/versions").json():
                ccompat = http.get(f"/apis/ccompat/v7/subjects/{subject}/versions/{version}")
                native = http.get(
                    f"/apis/registry/v3/groups/default/artifacts/{subject}/versions/{version}"
                )
                content_id = native.raise_for_status().json()["contentId"]
                assert ccompat.raise_for_status().json()["id"] == content_id
                ids.append((version, content_id, native.json()["globalId"]))
            found[subject] = ids
    return found


def with_firmware(schema: dict[str, Any]) -> dict[str, Any]:
    evolved = copy.deepcopy(schema)
    evolved["fields"].append(
        {"name": "firmware", "type": ["null", "string"], "default": None, "doc": "Firmware."}
    )
    return evolved


def reading(device: str, n: int) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": TS + n,
        "seq": n,
        "source": "test",
        "metrics": [
            {"name": "flow", "value": 10.5 + n, "text": None, "unit": "m3/h", "quality": "GOOD"}
        ],
        "labels": {"kind": "pump"},
    }


class Writes:
    """Schemas registered and messages written through one registry and one Kafka."""

    def __init__(self, registry_url: str, kafka: KafkaSettings, prefix: str) -> None:
        self.settings = SchemaRegistrySettings(url=f"{registry_url}/apis/ccompat/v7")
        self.kafka = kafka
        self.topic = f"{prefix}.readings"
        self.sent: list[dict[str, Any]] = []

    def register_and_write(self) -> None:
        admin = admin_client(self.kafka)
        admin.create_topics([NewTopic(self.topic, 1, 1)])[self.topic].result(timeout=15)
        producer = Producer(producer_config(self.kafka))
        with SchemaRegistry(self.settings) as registry:
            v1 = AvroSerde(registry, self.topic, "Reading")
            v2 = AvroSerde(registry, self.topic, with_firmware(v1.schema))
            for name in ("Rollup", "Alert", "DeviceEvent"):  # more subjects, other contents
                AvroSerde(registry, f"{self.topic}-{name.lower()}", name).register()
            for n, serde in enumerate([v1, v1, v2, v2]):
                value = reading("pump-1", n) | ({"firmware": "2.1"} if serde is v2 else {})
                producer.produce(self.topic, serde.encode(value), b"pump-1")
                self.sent.append(value if serde is v2 else value | {"firmware": None})
            assert v1.schema_id != v2.schema_id
        assert producer.flush(15) == 0

    def read_back(self) -> list[dict[str, Any]]:
        """Every message, decoded through a new client (empty cache) to the newest schema."""
        consumer = Consumer(consumer_config(self.kafka, f"{self.topic}-reader"))
        consumer.subscribe([self.topic])
        values: list[dict[str, Any]] = []
        with SchemaRegistry(self.settings) as registry:
            serde = AvroSerde(
                registry, self.topic, with_firmware(AvroSerde(None, "x", "Reading").schema)
            )
            deadline = time.monotonic() + 30
            while len(values) < len(self.sent) and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    values.append(dict(serde.decode(message.value())))
        consumer.close()
        return values


def fresh_id(registry_url: str, subject: str, doc: str) -> int:
    schema = {"type": "record", "name": "Probe", "doc": doc, "fields": []}
    with SchemaRegistry(SchemaRegistrySettings(url=f"{registry_url}/apis/ccompat/v7")) as client:
        return client.register(subject, schema)


def schema_of(registry_url: str, schema_id: int) -> dict[str, Any]:
    with SchemaRegistry(SchemaRegistrySettings(url=f"{registry_url}/apis/ccompat/v7")) as client:
        return client.schema_by_id(schema_id)


def all_ids(found: Snapshot) -> set[int]:
    return {content_id for versions in found.values() for _, content_id, _ in versions}


def test_a_restarted_or_killed_registry_keeps_every_id(
    own_registry: OwnRegistry, sentio_config: SentioConfig, unique_name: str
) -> None:
    info = httpx.get(f"{own_registry.url}/apis/registry/v3/system/info").json()
    assert info["name"] == APP_NAME
    writes = Writes(own_registry.url, sentio_config.kafka, unique_name)
    writes.register_and_write()
    before = snapshot(own_registry.url)
    assert len(before) == 4 and [v for v, _, _ in before[f"{writes.topic}-value"]] == [1, 2]
    assert own_registry.service.database_file.stat().st_size > 0

    own_registry.stop(signal.SIGTERM)
    own_registry.start()
    assert snapshot(own_registry.url) == before
    assert writes.read_back() == writes.sent
    after_restart = fresh_id(own_registry.url, f"{unique_name}.probe-value", "after restart")
    assert after_restart not in all_ids(before)

    # A crash right after an id was handed out: the id must still be there afterwards.
    crashed = fresh_id(own_registry.url, f"{unique_name}.probe-value", "just before a crash")
    own_registry.stop(signal.SIGKILL)
    own_registry.start()
    assert schema_of(own_registry.url, crashed)["doc"] == "just before a crash"
    assert schema_of(own_registry.url, after_restart)["doc"] == "after restart"
    assert {s: v for s, v in snapshot(own_registry.url).items() if s in before} == before
    assert writes.read_back() == writes.sent
    newest = fresh_id(own_registry.url, f"{unique_name}.probe-value", "after the crash")
    assert newest not in all_ids(before) | {after_restart, crashed}


def test_a_restarted_stack_keeps_ids_and_messages(
    sentio_config: SentioConfig, tmp_path: Path, unique_name: str
) -> None:
    """A stack of this test (Kafka and registry, the shared caches): down, up, all still there."""
    shared = sentio_config.stack
    home = tmp_path / "home"
    home.mkdir()
    for cache in (f"kafka-{shared.kafka_version}", f"apicurio-{shared.apicurio_version}"):
        (home / cache).symlink_to(shared.home / cache, target_is_directory=True)
    ports = {"kafka_port", "kafka_controller_port", "registry_port"}
    settings = shared.model_copy(update={"home": home} | {p: free_port() for p in ports})
    stack = Stack(settings)
    stack.services = [s for s in stack.services if s.name in ("kafka", "registry")]
    registry_url = f"http://127.0.0.1:{settings.registry_port}"
    kafka = sentio_config.kafka.model_copy(
        update={"bootstrap_servers": f"127.0.0.1:{settings.kafka_port}"}
    )
    stack.up()
    try:
        writes = Writes(registry_url, kafka, unique_name)
        writes.register_and_write()
        before = snapshot(registry_url)
        assert len(before) == 4
        assert stack.down() == ["kafka", "registry"]
        stack.up()
        assert snapshot(registry_url) == before
        assert writes.read_back() == writes.sent
        assert fresh_id(registry_url, f"{unique_name}.probe-value", "new") not in all_ids(before)
    finally:
        stack.down()


def test_an_export_restores_every_id_into_an_empty_registry(
    own_registry: OwnRegistry, sentio_config: SentioConfig, tmp_path: Path, unique_name: str
) -> None:
    """The backup docs/integration.md describes: admin/export, then admin/import elsewhere."""
    writes = Writes(own_registry.url, sentio_config.kafka, unique_name)
    writes.register_and_write()
    before = snapshot(own_registry.url)
    backup = httpx.get(f"{own_registry.url}/apis/registry/v3/admin/export", timeout=30)
    assert backup.raise_for_status().headers["content-type"] == "application/zip"
    empty = OwnRegistry(sentio_config.stack, tmp_path / "restored")
    empty.start()
    try:
        restored = httpx.post(
            f"{empty.url}/apis/registry/v3/admin/import",
            content=backup.content,
            headers={"Content-Type": "application/zip"},
            timeout=30,
        )
        assert restored.status_code == 204, restored.text
        assert snapshot(empty.url) == before
        writes.settings = SchemaRegistrySettings(url=f"{empty.url}/apis/ccompat/v7")
        assert writes.read_back() == writes.sent  # decoded through the restored registry
        assert fresh_id(empty.url, f"{unique_name}.probe-value", "new") not in all_ids(before)
    finally:
        empty.close()
