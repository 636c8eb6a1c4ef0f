"""The MQTT connector against a real Mosquitto broker started for each test.

Each test starts ``mosquitto`` on a free 127.0.0.1 port (config in tmp_path), publishes with a
paho client and asserts on exactly what the connector emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.mqtt.config import MqttSourceConfig
from sentio_iot.producers.mqtt.connector import MqttConnector
from sentio_iot.producers.recording import RecordingEmitter, wait_until
from sentio_iot.records import EventKind, Metric

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BASE = {"tenant": "default", "site": "local"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    port: int
    process: subprocess.Popen[bytes]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with (tmp_path / "mosquitto.log").open("wb") as log:
        process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError((tmp_path / "mosquitto.log").read_text())
        time.sleep(0.02)
    yield Broker(port, process)
    process.terminate()
    process.wait(10)


class Publisher:
    """A plain paho client publishing as a device would; publish() waits for the broker's ack."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    async def publish(
        self, topic: str, payload: bytes | str | dict[str, Any] | list[Any], *, retain: bool = False
    ) -> None:
        data = json.dumps(payload) if isinstance(payload, dict | list) else payload
        info = self.client.publish(topic, data, qos=1, retain=retain)
        await asyncio.to_thread(info.wait_for_publish, 5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    publisher = Publisher(broker.port)
    yield publisher
    publisher.close()


class Recorder(RecordingEmitter):
    """What the connector emitted, with the views these tests compare."""

    def device_events(self) -> list[tuple[str, EventKind, str]]:
        """Events of devices (not of the broker connection itself)."""
        return [(e.device_id, e.kind, e.message) for e in self.events if e.device_id != "mqtt"]

    def values(self) -> list[tuple[str, list[Metric]]]:
        return [(r.device_id, r.metrics) for r in self.readings]

    def numbers(self) -> list[float | None]:
        return [m.value for r in self.readings for m in r.metrics]


Start = Callable[..., Awaitable[tuple[MqttConnector, Recorder]]]


@pytest.fixture
async def start(broker: Broker) -> AsyncIterator[Start]:
    """Start a connector (connect, run, wait for its subscriptions); all are closed at the end."""
    running: list[tuple[MqttConnector, asyncio.Task[None]]] = []

    async def starter(
        recorder: Recorder | None = None, port: int | None = None, **entry: Any
    ) -> tuple[MqttConnector, Recorder]:
        entry.setdefault("client_id", f"sentio-test-{uuid.uuid4().hex[:8]}")
        config = MqttSourceConfig.model_validate({"port": port or broker.port, **entry})
        recorder = recorder or Recorder()
        connector = MqttConnector(config, recorder, ConnectorContext())
        await connector.connect()
        task = asyncio.create_task(connector.run())
        running.append((connector, task))
        await connector.wait_subscribed(5)
        return connector, recorder

    yield starter
    for connector, task in running:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connector.close()
    ours = [t.name for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-sentio")]
    assert ours == [], "a closed connector left its network thread running"


async def test_generic_patterns_json_fields_and_plain_values(
    publisher: Publisher, start: Start
) -> None:
    _, recorder = await start(
        mappings=[
            {
                "topic": "plant/{line}/{device}/{metric}",
                "unit": "degC",
                "labels": {"line": "{line}"},
            },
            {
                "topic": "sensors/{device}/state",
                "fields": [
                    {"path": "$.env.temperature", "metric": "temperature", "unit": "degC"},
                    {"path": "humidity", "unit": "%"},
                    {"path": "$.flags[0]", "metric": "door_open"},
                ],
            },
            {"topic": "status/{device}/#", "metric": "online"},
        ]
    )
    await publisher.publish("plant/l1/press-1/temperature", "21.5")
    await publisher.publish("plant/l1/press-1/running", "ON")
    await publisher.publish(
        "sensors/s1/state", {"env": {"temperature": 20.25}, "humidity": 41, "flags": [False]}
    )
    await publisher.publish("status/s1/availability", "offline")
    await wait_until(lambda: len(recorder.readings) == 4)
    assert recorder.values() == [
        ("press-1", [Metric("temperature", 21.5, "degC")]),
        ("press-1", [Metric("running", 1.0, "degC")]),
        (
            "s1",
            [
                Metric("temperature", 20.25, "degC"),
                Metric("humidity", 41.0, "%"),
                Metric("door_open", 0.0),
            ],
        ),
        ("s1", [Metric("online", 0.0)]),
    ]
    assert recorder.readings[0].labels == {**BASE, "line": "l1"}
    assert recorder.readings[0].source == "mqtt"
    assert [r.seq for r in recorder.readings] == [1, 2, 1, 2]
    assert recorder.dead_letters == []


async def test_json_state_and_plain_availability_on_one_subscription(
    publisher: Publisher, start: Start
) -> None:
    _, recorder = await start(  # one subscription, home/+/#, receives both topics
        mappings=[
            {"topic": "home/{device}/availability", "kind": "availability"},
            {"topic": "home/{device}/{what#}", "fields": [{"path": "$.power", "unit": "W"}]},
        ]
    )
    await publisher.publish("home/plug1/availability", "online")
    await publisher.publish("home/plug1/state", {"power": 12.5})
    await publisher.publish("home/plug1/availability", {"state": "offline"})
    await wait_until(lambda: len(recorder.device_events()) == 2 and len(recorder.readings) == 1)
    assert recorder.device_events() == [
        ("plug1", EventKind.ONLINE, "plug1 is online"),
        ("plug1", EventKind.OFFLINE, "plug1 is offline"),
    ]
    assert recorder.values() == [("plug1", [Metric("power", 12.5, "W")])]
    assert recorder.dead_letters == []


async def test_garbage_goes_to_the_dead_letters_and_the_connector_keeps_going(
    publisher: Publisher, start: Start
) -> None:
    _, recorder = await start(
        mappings=[
            {"topic": "plant/{device}/{metric}"},
            {"topic": "json/{device}", "value_path": "$.value"},
        ]
    )
    await publisher.publish("plant/p1/temperature", "warm")
    await publisher.publish("json/p2", '{"value": ')
    await publisher.publish("json/p2", '{"other": 1}')
    await publisher.publish("plant/p1/temperature", "22")
    await wait_until(lambda: len(recorder.readings) == 1)
    assert recorder.dead_letters == [
        (b"warm", "'warm' is not a number", "plant/p1/temperature"),
        (b'{"value": ', "invalid JSON: Expecting value at character 10", "json/p2"),
        (b'{"other": 1}', "no $.value in the payload (at $: an object)", "json/p2"),
    ]
    assert recorder.values() == [("p1", [Metric("temperature", 22.0)])]


LIGHT = {
    "ieee_address": "0x000b57fffec6a5b2",
    "friendly_name": "kitchen/light",
    "type": "Router",
    "definition": {
        "model": "LED1545G12",
        "vendor": "IKEA",
        "exposes": [
            {
                "type": "light",
                "features": [
                    {"type": "binary", "property": "state", "value_on": "ON", "value_off": "OFF"}
                ],
            },
            {"type": "numeric", "property": "power", "unit": "W"},
        ],
    },
}
SENSOR = {
    "ieee_address": "0x00158d0001a2b3c4",
    "friendly_name": "kitchen",
    "type": "EndDevice",
    "definition": {
        "model": "WSDCGQ11LM",
        "vendor": "Aqara",
        "exposes": [
            {"type": "numeric", "property": "temperature", "unit": "°C"},
            {"type": "numeric", "property": "humidity", "unit": "%"},
            {"type": "enum", "property": "action", "values": ["single"]},
        ],
    },
}
COORDINATOR = {
    "ieee_address": "0x00124b0000000000",
    "friendly_name": "Coordinator",
    "type": "Coordinator",
    "definition": None,
}


async def test_zigbee2mqtt(publisher: Publisher, start: Start) -> None:
    await publisher.publish("zigbee2mqtt/bridge/devices", [COORDINATOR, LIGHT, SENSOR], retain=True)
    await publisher.publish("zigbee2mqtt/bridge/state", {"state": "online"}, retain=True)
    _, recorder = await start(zigbee2mqtt={})
    await wait_until(lambda: len(recorder.device_events()) == 3)
    assert sorted(recorder.device_events()) == [
        ("0x000b57fffec6a5b2", EventKind.DISCOVERED, "kitchen/light joined the list"),
        ("0x00158d0001a2b3c4", EventKind.DISCOVERED, "kitchen joined the list"),
        ("zigbee2mqtt-bridge", EventKind.ONLINE, "bridge is online"),
    ]
    recorder.events.clear()

    await publisher.publish(
        "zigbee2mqtt/kitchen/light", {"state": "ON", "power": 7.5, "linkquality": 96}
    )
    await publisher.publish("zigbee2mqtt/kitchen/light/set", {"state": "OFF"})  # a command: ignored
    await publisher.publish("zigbee2mqtt/kitchen/light/availability", {"state": "online"})  # 2.x
    await publisher.publish(
        "zigbee2mqtt/kitchen",
        {"temperature": 21.3, "humidity": 40.5, "action": "single", "last_seen": 1714557600000},
    )
    await publisher.publish("zigbee2mqtt/kitchen/availability", "offline")  # 1.x plain text
    await publisher.publish("zigbee2mqtt/kitchen/light/get", {"state": ""})
    await publisher.publish(
        "zigbee2mqtt/bridge/event",
        {
            "type": "device_leave",
            "data": {"ieee_address": "0x00158d0001a2b3c4", "friendly_name": "kitchen"},
        },
    )
    await publisher.publish("zigbee2mqtt/kitchen", "not json")
    await wait_until(lambda: len(recorder.dead_letters) == 1)
    assert recorder.values() == [
        (
            "0x000b57fffec6a5b2",
            [Metric("state", 1.0), Metric("power", 7.5, "W"), Metric("linkquality", 96.0)],
        ),
        (
            "0x00158d0001a2b3c4",
            [
                Metric("temperature", 21.3, "°C"),
                Metric("humidity", 40.5, "%"),
                Metric("action", None, text="single"),
            ],
        ),
    ]
    assert recorder.readings[0].labels == {
        **BASE,
        "friendly_name": "kitchen/light",
        "ieee_address": "0x000b57fffec6a5b2",
        "model": "LED1545G12",
        "vendor": "IKEA",
    }
    assert recorder.device_events() == [
        ("0x000b57fffec6a5b2", EventKind.ONLINE, "kitchen/light is online"),
        ("0x00158d0001a2b3c4", EventKind.OFFLINE, "kitchen is offline"),
        ("0x00158d0001a2b3c4", EventKind.REMOVED, "kitchen: device_leave"),
    ]
    assert recorder.dead_letters == [
        (b"not json", "invalid JSON: Expecting value at character 1", "zigbee2mqtt/kitchen")
    ]


def discovery_config(**extra: Any) -> dict[str, Any]:
    return {
        "~": "devices/climate1",
        "stat_t": "~/state",
        "avty_t": "~/status",
        "dev": {"ids": ["climate1"], "name": "Climate 1", "mf": "Acme", "mdl": "C1"},
        **extra,
    }


async def test_homeassistant_discovery(publisher: Publisher, start: Start) -> None:
    temperature = discovery_config(
        uniq_id="climate1_t",
        val_tpl="{{ value_json.temperature | float | round(1) }}",
        unit_of_meas="°C",
        dev_cla="temperature",
    )
    humidity = discovery_config(
        uniq_id="climate1_h",
        val_tpl="{{ value_json['humidity'] }}",
        unit_of_meas="%",
        dev_cla="humidity",
    )
    await publisher.publish(
        "homeassistant/sensor/climate1/temperature/config", temperature, retain=True
    )
    await publisher.publish("homeassistant/sensor/climate1/humidity/config", humidity, retain=True)
    connector, recorder = await start(homeassistant={})
    await wait_until(lambda: len(recorder.device_events()) == 2)
    assert sorted(recorder.device_events()) == [
        ("climate1", EventKind.DISCOVERED, "sensor humidity discovered"),
        ("climate1", EventKind.DISCOVERED, "sensor temperature discovered"),
    ]
    found = {
        e.details["unique_id"]: e.details for e in recorder.events if e.kind is EventKind.DISCOVERED
    }
    assert found["climate1_t"] == {
        "component": "sensor",
        "state_topic": "devices/climate1/state",
        "unique_id": "climate1_t",
        "unit": "°C",
        "device_class": "temperature",
    }
    recorder.events.clear()
    await connector.wait_subscribed(5)  # the state and availability topics the configs named

    await publisher.publish("devices/climate1/state", {"temperature": 21.46, "humidity": 40})
    await publisher.publish("devices/climate1/status", "offline")  # plain text next to JSON state
    await wait_until(lambda: len(recorder.readings) == 1 and len(recorder.events) == 1)
    assert sorted(recorder.values()[0][1], key=lambda m: m.name) == [
        Metric("humidity", 40.0, "%"),
        Metric("temperature", 21.5, "°C"),
    ]
    assert recorder.readings[0].labels == {
        **BASE,
        "device_name": "Climate 1",
        "manufacturer": "Acme",
        "model": "C1",
    }
    assert recorder.device_events() == [("climate1", EventKind.OFFLINE, "climate1 is offline")]

    # An empty retained config removes the entity.
    await publisher.publish("homeassistant/sensor/climate1/humidity/config", b"", retain=True)
    await wait_until(lambda: len(recorder.events) == 2)
    assert recorder.device_events()[1] == ("climate1", EventKind.REMOVED, "sensor humidity removed")
    await publisher.publish(
        "devices/climate1/state", {"temperature": 22.0, "humidity": 41}, retain=True
    )
    await wait_until(lambda: len(recorder.readings) == 2)
    assert recorder.values()[1] == ("climate1", [Metric("temperature", 22.0, "°C")])

    # Home Assistant comes online: retained states are read again, republished configs taken.
    await publisher.publish("homeassistant/status", "online")
    await wait_until(lambda: len(recorder.readings) == 3)
    assert recorder.values()[2] == ("climate1", [Metric("temperature", 22.0, "°C")])
    await publisher.publish("homeassistant/sensor/climate1/humidity/config", humidity)
    await wait_until(lambda: len(recorder.events) == 3)
    assert recorder.device_events()[2] == (
        "climate1",
        EventKind.DISCOVERED,
        "sensor humidity discovered",
    )
    assert recorder.dead_letters == []


async def test_homeassistant_unreadable_state_and_config(
    publisher: Publisher, start: Start
) -> None:
    connector, recorder = await start(homeassistant={})
    await publisher.publish(
        "homeassistant/sensor/x/config",
        {"stat_t": "x/state", "val_tpl": "{{ value_json.t }}", "unit_of_meas": "W"},
    )
    await publisher.publish(
        "homeassistant/sensor/y/config",
        {"stat_t": "y/state", "val_tpl": "{{ value | regex_replace('a') }}"},
    )
    await wait_until(lambda: len(recorder.events) == 2 and len(recorder.dead_letters) == 1)
    await connector.wait_subscribed(5)
    await publisher.publish("x/state", "garbage")
    await wait_until(lambda: len(recorder.dead_letters) == 2)
    assert [(reason, origin) for _, reason, origin in recorder.dead_letters] == [
        (
            "value template not supported: unsupported filter 'regex_replace'; supported: abs, bool, d, default, float, int, is_defined, lower, multiply, round, string, trim, upper",
            "homeassistant/sensor/y/config",
        ),
        ("x: value_json: the payload is not JSON", "x/state"),
    ]


class Proxy:
    """A TCP relay between the connector and the broker that the test can cut and restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.ends: list[asyncio.StreamWriter] = []
        self.relays: set[asyncio.Future[Any]] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Stop listening and drop every connection (the broker sees the client vanish)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for end in self.ends:
            end.transport.abort()
        self.ends.clear()
        await asyncio.gather(*self.relays, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ends.append(writer)
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.ends.append(upstream)
        relay = asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        self.relays.add(relay)
        await relay
        self.relays.discard(relay)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()


@pytest.fixture
async def proxy(broker: Broker) -> AsyncIterator[Proxy]:
    proxy = Proxy(broker.port)
    await proxy.open()
    yield proxy
    await proxy.cut()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_persistent_session_delivers_what_was_published_while_away(
    proxy: Proxy, publisher: Publisher, start: Start, protocol: str
) -> None:
    connector, recorder = await start(
        port=proxy.port,
        protocol=protocol,
        mappings=[{"topic": "meter/{device}/{metric}", "unit": "kWh"}],
    )
    await publisher.publish("meter/m1/energy", "1")
    await wait_until(lambda: len(recorder.readings) == 1)

    await proxy.cut()
    await wait_until(lambda: any(e.kind is EventKind.DISCONNECTED for e in recorder.events))
    for value in ("2", "3", "4"):
        await publisher.publish("meter/m1/energy", value)  # the broker queues them for our session
    await proxy.open()
    await wait_until(lambda: 4.0 in recorder.numbers(), timeout_s=10)  # it reconnects by itself
    # QoS 1 is at least once: if the cut beat our ack of "1" to the broker, "1" comes again.
    assert recorder.numbers() in ([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 3.0, 4.0])
    connects = [e.details for e in recorder.events if e.kind is EventKind.CONNECTED]
    assert connects == [{"session_present": "false"}, {"session_present": "true"}]
    await connector.close()


async def test_a_restarted_connector_resumes_its_session(
    broker: Broker, publisher: Publisher, start: Start
) -> None:
    client_id = f"sentio-resume-{uuid.uuid4().hex[:8]}"
    await publisher.publish("meter/m1/energy", "10", retain=True)
    first, recorder = await start(
        client_id=client_id, mappings=[{"topic": "meter/{device}/{metric}"}]
    )
    await wait_until(lambda: len(recorder.readings) == 1)
    await first.close()
    await publisher.publish("meter/m1/energy", "11")
    await publisher.publish("meter/m1/energy", "12")
    _, again = await start(client_id=client_id, mappings=[{"topic": "meter/{device}/{metric}"}])
    await wait_until(lambda: len(again.readings) == 2)
    await asyncio.sleep(0.2)  # the retained 10 must not come back: the subscription was kept
    assert again.numbers() == [11.0, 12.0]


async def test_a_broker_that_is_down_at_start_is_not_an_error(
    proxy: Proxy, publisher: Publisher
) -> None:
    await proxy.cut()
    config = MqttSourceConfig.model_validate(
        {
            "port": proxy.port,
            "client_id": f"sentio-late-{uuid.uuid4().hex[:8]}",
            "mappings": [{"topic": "m/{device}/{metric}"}],
        }
    )
    recorder = Recorder()
    connector = MqttConnector(config, recorder, ConnectorContext())
    try:
        await connector.connect()
        await wait_until(lambda: len(recorder.events) == 1)
        await proxy.open()
        await connector.wait_subscribed(10)
        await publisher.publish("m/d1/level", "3")
        await wait_until(lambda: len(recorder.readings) == 1)
    finally:
        await connector.close()
    assert [(e.kind, e.message) for e in recorder.events] == [
        (EventKind.ERROR, "cannot connect to the broker: no answer or connection refused"),
        (EventKind.CONNECTED, "connected"),
        (EventKind.DISCONNECTED, "closed"),
    ]
    assert recorder.values() == [("d1", [Metric("level", 3.0)])]
