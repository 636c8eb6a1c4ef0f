"""Zigbee2MQTT and Home Assistant discovery logic, without a broker."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from sentio_iot.producers.mqtt.config import HomeAssistantPreset, Zigbee2MqttPreset
from sentio_iot.producers.mqtt.discovery import (
    DiscoveredEntity,
    DiscoveryTopic,
    expand,
    parse_entity,
)
from sentio_iot.producers.mqtt.homeassistant import entity_metric
from sentio_iot.producers.mqtt.output import Message, Output
from sentio_iot.producers.mqtt.payloads import PayloadError
from sentio_iot.producers.mqtt.zigbee2mqtt import (
    Zigbee2Mqtt,
    Zigbee2MqttDevice,
    availability_kind,
    guess_friendly_name,
    resolve_friendly_name,
    state_metrics,
)
from sentio_iot.producers.recording import RecordingEmitter
from sentio_iot.records import EventKind, Metric

NAMES = {"kitchen", "kitchen/light", "kitchen/light/ceiling", "0x00158d0001a2b3c4"}


@pytest.mark.parametrize(
    ("rest", "resolved"),
    [
        ("kitchen", ("kitchen", "")),
        ("kitchen/light", ("kitchen/light", "")),
        ("kitchen/light/availability", ("kitchen/light", "availability")),
        ("kitchen/light/ceiling/set", ("kitchen/light/ceiling", "set")),
        ("kitchen/light/set/brightness", ("kitchen/light", "set/brightness")),
        ("kitchen/availability", ("kitchen", "availability")),
        ("0x00158d0001a2b3c4", ("0x00158d0001a2b3c4", "")),
        ("garage/door", None),
    ],
)
def test_friendly_names_resolve_to_the_longest_known_name(
    rest: str, resolved: tuple[str, str] | None
) -> None:
    assert resolve_friendly_name(rest, NAMES) == resolved


@pytest.mark.parametrize(
    ("rest", "guess"),
    [
        ("garage/door", ("garage/door", "")),
        ("garage/door/availability", ("garage/door", "availability")),
        ("garage/door/set", ("garage/door", "set")),
        ("garage/door/get/state", ("garage/door", "get/state")),
    ],
)
def test_friendly_names_without_a_device_list(rest: str, guess: tuple[str, str]) -> None:
    assert guess_friendly_name(rest) == guess


BULB = {
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
                    {
                        "type": "binary",
                        "name": "state",
                        "property": "state",
                        "value_on": "ON",
                        "value_off": "OFF",
                    },
                    {"type": "numeric", "name": "brightness", "property": "brightness"},
                    {
                        "type": "composite",
                        "name": "color_xy",
                        "property": "color",
                        "features": [
                            {"type": "numeric", "name": "x", "property": "x"},
                            {"type": "numeric", "name": "y", "property": "y"},
                        ],
                    },
                ],
            },
            {
                "type": "binary",
                "name": "lock",
                "property": "child_lock",
                "value_on": "LOCK",
                "value_off": "UNLOCK",
            },
            {"type": "numeric", "name": "power", "property": "power", "unit": "W"},
            {"type": "numeric", "name": "linkquality", "property": "linkquality", "unit": "lqi"},
        ],
    },
}


def test_device_learns_units_and_on_off_words_from_exposes() -> None:
    device = Zigbee2MqttDevice.from_bridge(BULB)
    assert device.units == {"power": "W", "linkquality": "lqi"}
    assert device.binaries == {"state": ("ON", "OFF"), "child_lock": ("LOCK", "UNLOCK")}
    assert device.labels() == {
        "friendly_name": "kitchen/light",
        "ieee_address": "0x000b57fffec6a5b2",
        "model": "LED1545G12",
        "vendor": "IKEA",
    }


def test_state_metrics() -> None:
    device = Zigbee2MqttDevice.from_bridge(BULB)
    state = {
        "state": "ON",
        "brightness": 215,
        "color": {"x": 0.3, "y": 0.4},
        "child_lock": "UNLOCK",
        "power": 7.5,
        "linkquality": 80,
        "effect": None,
        "update": {"state": "idle"},
        "last_seen": "2024-05-01T10:00:00Z",
        "color_mode": "xy",
        "list": [1, 2],
    }
    assert state_metrics(state, device, exclude=["update", "last_seen"]) == [
        Metric("state", 1.0),
        Metric("brightness", 215.0),
        Metric("color_x", 0.3),
        Metric("color_y", 0.4),
        Metric("child_lock", 0.0),
        Metric("power", 7.5, "W"),
        Metric("linkquality", 80.0, "lqi"),
        Metric("color_mode", None, text="xy"),
    ]
    assert state_metrics({"action": "single"}, None, text_values=False) == []


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b'{"state":"online"}', EventKind.ONLINE),
        (b'{"state": "offline"}', EventKind.OFFLINE),
        (b"online", EventKind.ONLINE),
        (b"offline", EventKind.OFFLINE),
    ],
)
def test_availability_both_forms(payload: bytes, kind: EventKind) -> None:
    assert availability_kind(payload) is kind


def test_availability_garbage() -> None:
    with pytest.raises(PayloadError, match="availability must be online or offline, got 'maybe'"):
        availability_kind(b"maybe")


def test_state_before_the_device_list_is_held_until_it_arrives() -> None:
    recorder = RecordingEmitter()
    timers: list[tuple[float, Callable[[], None]]] = []
    bridge = Zigbee2Mqtt(
        Zigbee2MqttPreset.model_validate({}),
        Output(recorder, {}),
        lambda delay, call: timers.append((delay, call)),
    )
    bridge.handle(Message("zigbee2mqtt/kitchen/light", b'{"power": 7.5}', 1))
    assert recorder.readings == [] and [t[0] for t in timers] == [10.0]
    bridge.handle(Message("zigbee2mqtt/bridge/devices", json.dumps([BULB]).encode(), 2))
    assert [(r.device_id, r.metrics) for r in recorder.readings] == [
        ("0x000b57fffec6a5b2", [Metric("power", 7.5, "W")])
    ]
    assert [(e.device_id, e.kind) for e in recorder.events] == [
        ("0x000b57fffec6a5b2", EventKind.DISCOVERED)
    ]
    timers[0][1]()  # the wait ends: nothing left to release
    assert len(recorder.readings) == 1


def test_held_state_is_keyed_by_friendly_name_when_no_device_list_comes() -> None:
    recorder = RecordingEmitter()
    timers: list[Callable[[], None]] = []
    bridge = Zigbee2Mqtt(
        Zigbee2MqttPreset.model_validate({}),
        Output(recorder, {}),
        lambda _, call: timers.append(call),
    )
    bridge.handle(Message("zigbee2mqtt/garage/door", b'{"contact": true}', 1))
    timers[0]()
    assert [(r.device_id, r.metrics, r.labels) for r in recorder.readings] == [
        ("garage/door", [Metric("contact", 1.0)], {"friendly_name": "garage/door"})
    ]


def test_renamed_and_removed_devices() -> None:
    recorder = RecordingEmitter()
    bridge = Zigbee2Mqtt(
        Zigbee2MqttPreset.model_validate({}), Output(recorder, {}), lambda *_: None
    )
    bridge.handle(Message("zigbee2mqtt/bridge/devices", json.dumps([BULB]).encode(), 1))
    renamed = dict(BULB, friendly_name="kitchen/lamp")
    bridge.handle(Message("zigbee2mqtt/bridge/devices", json.dumps([renamed]).encode(), 2))
    bridge.handle(Message("zigbee2mqtt/bridge/devices", b"[]", 3))
    assert [(e.kind, e.message) for e in recorder.events] == [
        (EventKind.DISCOVERED, "kitchen/light joined the list"),
        (EventKind.INFO, "kitchen/lamp renamed from kitchen/light to kitchen/lamp"),
        (EventKind.REMOVED, "kitchen/lamp left the list"),
    ]


PRESET = HomeAssistantPreset.model_validate({})


def test_discovery_expands_abbreviations_and_the_base_topic() -> None:
    config = {
        "~": "tasmota/plug1",
        "stat_t": "~/tele/SENSOR",
        "avty": [{"t": "~/LWT", "pl_avail": "Online"}],
        "json_attr_t": "status/~",
        "dev": {"ids": ["plug1"], "mf": "Tasmota", "mdl": "S31"},
        "uniq_id": "plug1_power",
        "unit_of_meas": "W",
    }
    assert expand(config) == {
        "state_topic": "tasmota/plug1/tele/SENSOR",
        "availability": [{"topic": "tasmota/plug1/LWT", "payload_available": "Online"}],
        "json_attributes_topic": "status/tasmota/plug1",
        "device": {"identifiers": ["plug1"], "manufacturer": "Tasmota", "model": "S31"},
        "unique_id": "plug1_power",
        "unit_of_measurement": "W",
    }


def test_discovery_topic_parts() -> None:
    assert DiscoveryTopic.parse("homeassistant/sensor/node/temp/config", "homeassistant") == (
        DiscoveryTopic("sensor", "node", "temp")
    )
    assert DiscoveryTopic.parse("homeassistant/sensor/temp/config", "homeassistant") == (
        DiscoveryTopic("sensor", None, "temp")
    )
    assert DiscoveryTopic.parse("homeassistant/sensor/temp/state", "homeassistant") is None
    assert DiscoveryTopic.parse("homeassistant/status", "homeassistant") is None


def _entity(component: str, config: dict[str, object]) -> DiscoveredEntity:
    topic = f"homeassistant/{component}/node/obj/config"
    where = DiscoveryTopic.parse(topic, "homeassistant")
    assert where is not None
    return parse_entity(topic, where, json.dumps(config).encode(), PRESET)


def test_entity_from_an_abbreviated_config() -> None:
    entity = _entity(
        "sensor",
        {
            "stat_t": "z2m/room",
            "val_tpl": "{{ value_json.temperature }}",
            "unit_of_meas": "°C",
            "dev_cla": "temperature",
            "uniq_id": "room_temperature",
            "dev": {"ids": "room-sensor", "name": "Room", "mf": "Aqara"},
        },
    )
    assert entity_metric(entity, b'{"temperature": 21.5}') == Metric("obj", 21.5, "°C")
    assert entity_metric(entity, b'{"humidity": 40}') is None
    assert entity.device_id == "room-sensor"
    assert entity.labels == {"device_name": "Room", "manufacturer": "Aqara"}
    with pytest.raises(PayloadError, match="obj: 'warm' is not a number"):
        entity_metric(entity, b'{"temperature": "warm"}')


def test_binary_sensor_and_switch_words() -> None:
    motion = _entity(
        "binary_sensor",
        {"stat_t": "m", "val_tpl": "{{ value_json.occupancy }}", "pl_on": True, "pl_off": False},
    )
    assert entity_metric(motion, b'{"occupancy": true}') == Metric("obj", 1.0)
    assert entity_metric(motion, b'{"occupancy": false}') == Metric("obj", 0.0)
    switch = _entity("switch", {"stat_t": "s", "stat_on": "1", "stat_off": "0"})
    assert entity_metric(switch, b"1") == Metric("obj", 1.0)
    with pytest.raises(PayloadError, match="'2' is neither 1 nor 0"):
        entity_metric(switch, b"2")


def test_configs_sentio_cannot_read() -> None:
    with pytest.raises(PayloadError, match="sensor config without state_topic"):
        _entity("sensor", {"name": "x"})
    with pytest.raises(PayloadError, match="value template not supported: statements"):
        _entity("sensor", {"stat_t": "x", "val_tpl": "{% if value %}1{% endif %}"})
    with pytest.raises(PayloadError, match="a discovery config must be a JSON object"):
        parse_entity("t", DiscoveryTopic("sensor", None, "x"), b"[1]", PRESET)
