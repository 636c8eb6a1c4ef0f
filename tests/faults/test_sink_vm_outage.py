"""VictoriaMetrics stops for 30 s while the sink runs: afterwards every sample is there exactly once.

The test starts a VictoriaMetrics of its own (free port, its own folder, the stack's
``-dedup.minScrapeInterval=1ms``), runs the VM sink over a readings topic of its own while a
thread publishes readings, stops VM with SIGTERM (it flushes what it acknowledged), keeps
publishing for 30 s, starts VM again on the same data, and waits until the sink caught up.
During the outage the sink must retry and pause consumption (health ``degraded``); at the
end each device's series must hold every sequence number exactly once, at its timestamp.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.kafka import admin_client, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.stack.prerequisites import find_program
from sentio_iot.stack.process import ProcessRecord, is_running, log_tail, spawn, stop, wait_gone

DEVICES = [f"pump-{n}" for n in range(4)]
OUTAGE_S = 30.0
EMIT_EVERY_S = 0.02  # 4 devices: about 200 readings (400 samples) a second
T0_US = 1_790_000_000_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class OwnVictoriaMetrics:
    """A VictoriaMetrics of this test: started, stopped and started again on the same data."""

    def __init__(self, home: Path) -> None:
        binary = find_program("victoria-metrics")
        if binary is None:
            pytest.fail("victoria-metrics is not installed (Debian package victoria-metrics)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = home
        self.argv = [
            str(binary),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={home / 'data'}",
            "-retentionPeriod=100y",
            "-dedup.minScrapeInterval=1ms",
        ]
        self.record: ProcessRecord | None = None

    def start(self) -> None:
        log = self.home / "victoria-metrics.log"
        self.record = spawn(self.argv, log_path=log, cwd=self.home)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not is_running(self.record) or time.monotonic() > deadline:
                raise AssertionError(f"own VictoriaMetrics did not start: {log_tail(log)}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM: VictoriaMetrics flushes what it acknowledged, then exits."""
        assert self.record is not None
        stop(self.record, grace_s=20)
        assert wait_gone(self.record, 10)

    def kill(self) -> None:
        if self.record is not None and is_running(self.record):
            stop(self.record, grace_s=5)


class Emitting:
    """A thread publishing one reading per device every EMIT_EVERY_S, seq counting up."""

    def __init__(self, config: SentioConfig, topic: str) -> None:
        self.topic = topic
        self.sent = 0
        self._registry = SchemaRegistry(config.schema_registry)
        self._serde = AvroSerde(self._registry, topic, "Reading")
        self._producer = Producer(producer_config(config.kafka, **{"linger.ms": 5}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emitting")
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            for device in DEVICES:
                reading = {
                    "device_id": device,
                    "ts": T0_US + seq * 1000,  # one ms apart: every sample its own timestamp
                    "metrics": [
                        {"name": "flow", "value": float(seq), "unit": "m3/h"},
                        {"name": "vibration", "value": seq / 1000},
                    ],
                    "source": "simulate",
                    "seq": seq,
                }
                self._producer.produce(self.topic, self._serde.encode(reading), device.encode())
            self._producer.poll(0)
            seq += 1
            self.sent = seq
            time.sleep(EMIT_EVERY_S)

    def stop(self) -> int:
        """Stop, wait until Kafka confirmed everything; the readings sent per device."""
        self._stop.set()
        self._thread.join(30)
        assert self._producer.flush(30) == 0
        self._registry.close()
        return self.sent


def export(url: str, metric: str) -> dict[str, list[tuple[int, float]]]:
    response = httpx.post(f"{url}/api/v1/export", data={"match[]": metric}, timeout=30)
    response.raise_for_status()
    series: dict[str, list[tuple[int, float]]] = {}
    for line in response.text.splitlines():
        doc = json.loads(line)
        series[doc["metric"]["device"]] = sorted(zip(doc["timestamps"], doc["values"], strict=True))
    return series


@pytest.mark.timeout(150)
async def test_every_sample_exactly_once_after_an_outage(
    sentio_config: SentioConfig, unique_name: str, tmp_path: Path
) -> None:
    vm = OwnVictoriaMetrics(tmp_path)
    vm.start()
    config = load_config(
        data={
            "topics": {"prefix": f"{unique_name}."},
            "sinks": {
                "batch_timeout_s": 0.2,
                "retry_backoff_initial_s": 0.2,
                "retry_backoff_max_s": 2.0,
                "victoriametrics": {"url": vm.url, "health_port": 0, "timeout_s": 5},
            },
        }
    )
    admin = admin_client(config.kafka)
    topics = [NewTopic(f"{unique_name}.{n}", 3, 1) for n in ("readings", "deadletter")]
    for future in admin.create_topics(topics).values():
        future.result(timeout=15)
    topic = f"{unique_name}.readings"
    emitting = Emitting(config, topic)
    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    task = asyncio.create_task(runtime.run())
    try:
        await asyncio.sleep(6)
        assert runtime.metrics.records_written > 0, "nothing written before the outage"
        await asyncio.to_thread(vm.stop)
        outage_ends = time.monotonic() + OUTAGE_S
        await asyncio.sleep(OUTAGE_S / 2)
        written_during = runtime.metrics.records_written
        assert runtime.metrics.retries > 0
        assert runtime.health_report()["status"] == "degraded"
        assert runtime.health_report()["paused"] is True
        lag = sum(runtime.metrics.lag.values())
        assert lag > 0, "the lag does not show the readings piling up on Kafka"
        await asyncio.sleep(outage_ends - time.monotonic())
        assert runtime.metrics.records_written == written_during, "written while VM was down"
        await asyncio.to_thread(vm.start)
        await asyncio.sleep(4)
        sent = await asyncio.to_thread(emitting.stop)
        deadline = time.monotonic() + 40
        while runtime.metrics.records_written < sent * len(DEVICES):
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, (
                f"{runtime.metrics.records_written} of {sent * len(DEVICES)} written"
            )
            await asyncio.sleep(0.2)
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 30)
        emitting.stop()
        vm.kill()
        vm.start()  # read back from a fresh start: what VM made durable
    try:
        assert runtime.metrics.deadletter == 0
        want = [(T0_US // 1000 + seq, float(seq)) for seq in range(sent)]
        flows = export(vm.url, "sentio_flow")
        assert sorted(flows) == DEVICES
        for device in DEVICES:
            got = flows[device]
            assert len(got) == sent, f"{device}: {len(got)} samples for {sent} readings"
            assert got == want
        vibration = export(vm.url, "sentio_vibration")
        assert {d: len(v) for d, v in vibration.items()} == dict.fromkeys(DEVICES, sent)
    finally:
        vm.kill()
    print(
        f"{sent * len(DEVICES)} readings, {runtime.metrics.retries} retries, "
        f"{runtime.metrics.batches} batches, outage {OUTAGE_S:.0f} s"
    )
