"""The Home Assistant sink against the real Kafka, registry and Mosquitto (127.0.0.1:1883).

Anomalies, RUL predictions and alerts are published (Avro) to topics of this test; the
sink announces sensors through MQTT discovery and publishes their states. A plain paho
subscriber checks every message as Home Assistant reads it: config JSON, state JSON,
retained flags (a fresh subscription gets exactly the retained ones), availability with
the last will, and the configs published again on Home Assistant's birth message.
Device ids and the state topic prefix are unique per test; retained messages are cleared
at the end (an empty retained payload).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from paho.mqtt.enums import CallbackAPIVersion

from sentio_iot import __version__
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import ConfigError
from sentio_iot.kafka import admin_client, producer_config
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas.catalog import spec
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks.homeassistant import HomeAssistantWriter
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.sinks.writer import SinkRecord

SCHEMAS = {"anomalies": "Anomaly", "rul": "RulPrediction", "alerts": "Alert"}
TS = 1_795_000_000_000_000


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A plain paho client that keeps every message of its filters (what HA would read)."""

    def __init__(self, *filters: str) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"ha-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect("127.0.0.1", 1883)
        self.client.subscribe([(f, 1) for f in filters])
        self.client.loop_start()
        assert self._subscribed.wait(5)

    def _on_message(self, client: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(message.topic, message.payload, bool(message.retain)))

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    async def wait(self, topic: str, count: int = 1, timeout_s: float = 20.0) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        while len(self.on(topic)) < count:
            assert time.monotonic() < deadline, f"{topic}: {self.on(topic)} of {self.messages}"
            await asyncio.sleep(0.05)
        return self.on(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def names(unique_name: str) -> Iterator[dict[str, str]]:
    """Device and topic names of this test; their retained messages are cleared afterwards."""
    node = unique_name.replace(".", "-")
    ours = {"device": f"{node}-pump", "base": f"sentio-test/{node}"}
    yield ours
    seen = Subscriber(f"homeassistant/sensor/{ours['device']}/+/config", f"{ours['base']}/#")
    time.sleep(0.3)  # retained messages arrive right after the subscription
    for topic in {m.topic for m in seen.messages}:
        seen.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    seen.close()


def sink_config(names: dict[str, str], **homeassistant: Any) -> SentioConfig:
    return load_config(
        data={
            "topics": {"prefix": f"{names['base'].replace('/', '.')}.", "partitions": 1},
            "sinks": {
                "batch_timeout_s": 0.1,
                "startup_timeout_s": 3,
                "homeassistant": {"base_topic": names["base"], "health_port": 0, **homeassistant},
            },
        }
    )


def create_topics(config: SentioConfig) -> None:
    admin = admin_client(config.kafka)
    names = [*SCHEMAS, "deadletter"]
    topics = [NewTopic(spec(n).topic(config.topics), 1, 1) for n in names]
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
            )
        assert producer.flush(15) == 0


def anomaly(device: str) -> dict[str, Any]:
    return {
        "device_id": device,
        "metric": "vibration",
        "ts": TS,
        "value": 9.5,
        "score": 6.25,
        "threshold": 4.0,
        "detector": "robust_zscore",
        "detector_version": "1",
        "labels": {"kind": "pump"},
    }


def rul(device: str) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": TS,
        "rul": 41.5,
        "rul_unit": "hours",
        "lower": 30.0,
        "upper": 55.0,
        "model_name": "cmapss_lstm",
        "model_version": "3",
        "window_size": 30,
        "labels": {"kind": "pump"},
    }


def alert(device: str, status: str) -> dict[str, Any]:
    return {
        "alert_id": f"{device}/overheat/1",
        "device_id": device,
        "type": "overheat",
        "severity": "CRITICAL",
        "status": status,
        "start_ts": TS,
        "count": 1,
        "message": "temperature 92.5 over 90",
        "details": {},
        "labels": {"kind": "pump"},
    }


async def run_until(runtime: SinkRuntime, done: int, timeout_s: float = 30.0) -> None:
    task = asyncio.create_task(runtime.run())
    deadline = time.monotonic() + timeout_s
    try:
        while runtime.metrics.records_written < done:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"only {runtime.metrics.records_written} written"
            await asyncio.sleep(0.05)
    finally:
        runtime.stop()
        await asyncio.wait_for(task, 30)


async def test_sensors_appear_as_home_assistant_documents_them(names: dict[str, str]) -> None:
    device, base = names["device"], names["base"]
    config = sink_config(names)
    create_topics(config)
    live = Subscriber(f"homeassistant/sensor/{device}/+/config", f"{base}/#")
    publish(config, [("anomalies", anomaly(device)), ("rul", rul(device))])
    publish(config, [("alerts", alert(device, "FIRING"))])
    runtime = SinkRuntime(config, "homeassistant", group_id=base, health_port=0)
    task = asyncio.create_task(run_until(runtime, done=4))
    alert_state = f"{base}/{device}/alert_overheat/state"
    await live.wait(alert_state)
    publish(config, [("alerts", alert(device, "RESOLVED"))])
    await task
    live.close()

    device_info = {
        "identifiers": [f"sentio_{device}"],
        "name": device,
        "manufacturer": "Sentio IoT",
        "model": "pump",
    }
    common = {
        "availability_topic": f"{base}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device_info,
        "origin": {"name": "Sentio IoT", "sw_version": __version__},
    }
    rul_state = f"{base}/{device}/remaining_useful_life/state"
    score_state = f"{base}/{device}/vibration_anomaly_score/state"
    expected_configs = {
        f"homeassistant/sensor/{device}/vibration_anomaly_score/config": {
            "name": "vibration anomaly score",
            "unique_id": f"sentio_{device}_vibration_anomaly_score",
            "state_topic": score_state,
            "value_template": "{{ value_json.score }}",
            "json_attributes_topic": score_state,
            "state_class": "measurement",
            **common,
        },
        f"homeassistant/sensor/{device}/remaining_useful_life/config": {
            "name": "Remaining useful life",
            "unique_id": f"sentio_{device}_remaining_useful_life",
            "state_topic": rul_state,
            "value_template": "{{ value_json.rul }}",
            "json_attributes_topic": rul_state,
            "unit_of_measurement": "h",
            "device_class": "duration",
            "state_class": "measurement",
            **common,
        },
        f"homeassistant/sensor/{device}/alert_overheat/config": {
            "name": "overheat alert",
            "unique_id": f"sentio_{device}_alert_overheat",
            "state_topic": alert_state,
            "value_template": "{{ value_json.state }}",
            "json_attributes_topic": alert_state,
            "device_class": "enum",
            "options": ["ok", "critical", "major", "minor", "warning", "indeterminate"],
            **common,
        },
    }
    time_ = "2026-11-18T11:06:40Z"
    firing = {
        "state": "critical",
        "status": "FIRING",
        "alert_id": f"{device}/overheat/1",
        "severity": "CRITICAL",
        "message": "temperature 92.5 over 90",
        "since": time_,
    }
    expected_states = {
        score_state: [
            {
                "score": 6.25,
                "value": 9.5,
                "threshold": 4.0,
                "detector": "robust_zscore",
                "detector_version": "1",
                "time": time_,
            }
        ],
        rul_state: [
            {
                "rul": 41.5,
                "lower": 30.0,
                "upper": 55.0,
                "model": "cmapss_lstm",
                "model_version": "3",
                "time": time_,
            }
        ],
        alert_state: [firing, {**firing, "state": "ok", "status": "RESOLVED"}],
    }
    # Live: each config once (the resolved alert changes no config), before its first state.
    for topic, want in expected_configs.items():
        assert [m.json() for m in live.on(topic)] == [want]
    for topic, want in expected_states.items():
        assert [m.json() for m in live.on(topic)] == want
    order = [m.topic for m in live.messages]
    for topic, want in expected_configs.items():
        assert order.index(topic) < order.index(want["state_topic"])
    assert [m.payload for m in live.on(f"{base}/availability")] == [b"online", b"offline"]

    # A fresh subscriber (Home Assistant starting) gets exactly the retained state of things.
    fresh = Subscriber(f"homeassistant/sensor/{device}/+/config", f"{base}/#")
    await fresh.wait(f"{base}/availability")
    await asyncio.sleep(0.3)
    fresh.close()
    retained = {m.topic: m.json() if m.payload[:1] == b"{" else m.payload for m in fresh.messages}
    assert all(m.retain for m in fresh.messages)
    assert retained == {
        **expected_configs,
        **{topic: states[-1] for topic, states in expected_states.items()},
        f"{base}/availability": b"offline",
    }


async def test_configs_are_published_again_when_home_assistant_comes_online(
    names: dict[str, str],
) -> None:
    device, base = names["device"], names["base"]
    config = sink_config(names)
    live = Subscriber(f"homeassistant/sensor/{device}/+/config", f"{base}/#")
    writer = HomeAssistantWriter(config)
    await writer.start()
    try:
        await writer.write([SinkRecord("t", "anomalies", 0, 0, None, anomaly(device))])
        topic = f"homeassistant/sensor/{device}/vibration_anomaly_score/config"
        [first] = await live.wait(topic)
        # Home Assistant's birth message (not retained, as Home Assistant sends it)
        live.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        again = await live.wait(topic, count=2)
        assert again[1].payload == first.payload
    finally:
        await writer.close()
        live.close()


async def test_the_last_will_marks_the_sensors_unavailable(names: dict[str, str]) -> None:
    base = names["base"]
    live = Subscriber(f"{base}/availability")
    script = (
        "import asyncio, sys\n"
        "from sentio_iot.config import load_config\n"
        "from sentio_iot.sinks.homeassistant import HomeAssistantWriter\n"
        "async def main():\n"
        f"    config = load_config(data={{'sinks': {{'homeassistant': {{'base_topic': {base!r}}}}}}})\n"
        "    await HomeAssistantWriter(config).start()\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert await asyncio.to_thread(process.stdout.readline) == b"ready\n"
        await live.wait(f"{base}/availability")
        process.kill()  # no clean disconnect: the broker sends the will
        messages = await live.wait(f"{base}/availability", count=2)
    finally:
        process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        live.close()
    assert [m.payload for m in messages] == [b"online", b"offline"]


async def test_a_broker_that_cannot_be_reached_stops_the_sink_at_start_up(
    names: dict[str, str],
) -> None:
    config = sink_config(names, port=1)
    writer = HomeAssistantWriter(config)
    with pytest.raises(
        ConfigError, match=r"sinks\.homeassistant\.host: cannot reach .*127\.0\.0\.1:1 "
    ):
        await writer.start()
