"""Run `sentio stream worker` in tests: a subprocess on its own app id, topic prefix and state.

    from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401

    def test_something(stream_testbed: StreamTestbed) -> None:
        bed = stream_testbed.configure(streams={"rollups": {"windows_s": [60]}})
        worker = bed.start_worker(agents="rollups")          # waits for /health 200
        bed.produce("readings", [(reading.device_id, reading.to_record()), ...])
        rollups = bed.read("rollups", count=12)              # read_committed, decoded
        worker.stop()                                        # SIGTERM, waits for exit 0

Every test gets topic prefix ``<unique>.``, app id ``<unique>``, a state dir under tmp_path
and free web ports, so tests never see each other's data. Workers still running at the end
are killed by the fixture. ``bed.produce_raw`` sends bytes as they are (poison tests);
``worker.kill()`` is SIGKILL (fault tests). Worker logs: ``worker.log_path``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde

SENTIO = str(Path(sys.executable).with_name("sentio"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """One record read back: key, decoded value, headers, partition, offset."""

    key: bytes | None
    value: dict[str, Any]
    headers: dict[str, bytes]
    partition: int
    offset: int


class WorkerProcess:
    """One `sentio stream worker` subprocess."""

    def __init__(self, config_path: Path, web_port: int, agents: str, log_path: Path) -> None:
        self.config_path = config_path
        self.web_port = web_port
        self.agents = agents
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 60.0) -> WorkerProcess:
        args = [SENTIO, "stream", "worker", "-c", str(self.config_path)]
        args += ["--web-port", str(self.web_port), "--agents", self.agents]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(ready_timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}: {self.log()}")
            if self.health() == 200:
                return
            time.sleep(0.3)
        raise AssertionError(f"worker not ready in {timeout_s} s: {self.log()}")

    def health(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metric(self, line_prefix: str) -> float:
        """The value of the first /metrics line starting with ``line_prefix`` (0 if none)."""
        for line in self.metrics().splitlines():
            if line.startswith(line_prefix):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not stop in {timeout_s} s: {self.log()}") from None

    def kill(self) -> None:
        """SIGKILL: no drain, no commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self, tail: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""


class StreamTestbed:
    """A test's own configuration file, workers, and produce/read helpers."""

    def __init__(self, tmp_path: Path, name: str, base: SentioConfig) -> None:
        self.tmp_path = tmp_path
        self.name = name
        self.base = base
        self.config_path = tmp_path / "sentio.yaml"
        self.config: SentioConfig = base
        self.workers: list[WorkerProcess] = []
        self._registry: SchemaRegistry | None = None
        self.configure()

    def configure(
        self, partitions: int = 3, streams: Mapping[str, Any] | None = None
    ) -> StreamTestbed:
        """Write the test's configuration (call before starting workers)."""
        data: dict[str, Any] = {
            "kafka": {"bootstrap_servers": self.base.kafka.bootstrap_servers},
            "schema_registry": {"url": self.base.schema_registry.url},
            "topics": {"prefix": f"{self.name}.", "partitions": partitions},
            "streams": {
                "app_id": self.name,
                "state_dir": str(self.tmp_path / "state"),
                "batch_within_s": 0.2,
                **dict(streams or {}),
            },
        }
        self.config_path.write_text(yaml.safe_dump(data))
        self.config = load_config(self.config_path)
        return self

    def start_worker(self, agents: str = "rollups", web_port: int | None = None) -> WorkerProcess:
        port = web_port or free_port()
        log_path = self.tmp_path / f"worker-{port}.log"
        worker = WorkerProcess(self.config_path, port, agents, log_path)
        self.workers.append(worker)
        return worker.start()

    def topic(self, catalog_name: str) -> str:
        return spec(catalog_name).topic(self.config.topics)

    def serde(self, catalog_name: str) -> AvroSerde:
        if self._registry is None:
            self._registry = SchemaRegistry(self.config.schema_registry)
        entry = spec(catalog_name)
        assert entry.value_schema is not None
        return AvroSerde(self._registry, self.topic(catalog_name), entry.value_schema)

    def produce(
        self,
        catalog_name: str,
        records: Sequence[tuple[str, Mapping[str, Any]]],
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Encode (Avro, registered schema) and send ``(key, record)`` pairs; flush."""
        serde = self.serde(catalog_name)
        serde.register()
        self.produce_raw(catalog_name, [(k.encode(), serde.encode(r)) for k, r in records], headers)

    def produce_raw(
        self,
        catalog_name: str,
        messages: Sequence[tuple[bytes | None, bytes]],
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        from sentio_iot.topic_admin import apply_topics

        apply_topics(self.config, (spec(catalog_name),))
        producer = Producer(
            {"bootstrap.servers": self.config.kafka.bootstrap_servers, "linger.ms": 20}
        )
        for i, (key, value) in enumerate(messages):
            producer.produce(self.topic(catalog_name), key=key, value=value, headers=headers)
            if i % 1000 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0

    def read(
        self, catalog_name: str, count: int, timeout_s: float = 60.0, settle_s: float = 2.0
    ) -> list[Received]:
        """Read (read_committed, from the beginning) until ``count`` records came and no more
        arrive for ``settle_s`` (so extra records are seen), or ``timeout_s``."""
        serde = self.serde(catalog_name)
        consumer = Consumer(
            {
                "bootstrap.servers": self.config.kafka.bootstrap_servers,
                "group.id": f"{self.name}-read-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.topic(catalog_name)])
        received: list[Received] = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        try:
            while time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None or message.error():
                    if len(received) >= count and time.monotonic() - quiet_since >= settle_s:
                        break
                    continue
                quiet_since = time.monotonic()
                received.append(
                    Received(
                        key=message.key(),
                        value=serde.decode(message.value()),
                        headers={k: v for k, v in message.headers() or [] if v is not None},
                        partition=message.partition(),
                        offset=message.offset(),
                    )
                )
        finally:
            consumer.close()
        return received

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        if self._registry is not None:
            self._registry.close()
        self.delete_topics()

    def delete_topics(self) -> None:
        """Drop this test's topics (catalog, changelogs, ticks) so the shared broker stays small."""
        from sentio_iot.kafka import admin_client

        admin = admin_client(self.config.kafka)
        ours = [
            t
            for t in admin.list_topics(timeout=15).topics
            if t.startswith((f"{self.name}.", f"{self.name}-"))
        ]
        for future in admin.delete_topics(ours).values() if ours else ():
            with contextlib.suppress(Exception):  # already gone, or a busy broker: not a result
                future.result(15)


@pytest.fixture(name="stream_testbed")
def stream_testbed_fixture(
    tmp_path: Path, unique_name: str, sentio_config: SentioConfig
) -> Iterator[StreamTestbed]:
    """A :class:`StreamTestbed` on unique names; kills its workers at the end."""
    bed = StreamTestbed(tmp_path, unique_name, sentio_config)
    try:
        yield bed
    finally:
        bed.close()
        if os.environ.get("SENTIO_KEEP_WORKER_LOGS"):
            for worker in bed.workers:
                print(worker.log())
