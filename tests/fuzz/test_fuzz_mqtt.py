"""MQTT payloads: the generic mappings, the Zigbee2MQTT preset and Home Assistant MQTT discovery
(with its value templates) take any topic and payload without raising: each message becomes
readings, events or a dead letter whose reason is one line, and nothing is "internal error"
(the connector's catch-all for a handler that raised)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sentio_iot.producers.mqtt.config import (
    HomeAssistantPreset,
    TopicMapping,
    Zigbee2MqttPreset,
)
from sentio_iot.producers.mqtt.homeassistant import HomeAssistantDiscovery
from sentio_iot.producers.mqtt.mappings import GenericMappings
from sentio_iot.producers.mqtt.output import Message, Output
from sentio_iot.producers.mqtt.templates import MissingValue, TemplateError, compile_template
from sentio_iot.producers.mqtt.zigbee2mqtt import Zigbee2Mqtt
from sentio_iot.producers.recording import RecordingEmitter

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["ON", "OFF", "online", "offline", "unknown", "1e400", "NaN", "-inf"])
    | st.text(max_size=20)
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


payloads = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(str.encode),
    documents.map(as_json),
)


def check(recorder: RecordingEmitter) -> None:
    for letter in recorder.dead_letters:
        assert letter.reason and "\n" not in letter.reason, letter
        assert not letter.reason.startswith("internal error"), letter
    for reading in recorder.readings:
        for metric in reading.metrics:
            assert metric.value is None or math.isfinite(metric.value), reading


def run(handler: Any, messages: list[tuple[str, bytes]], recorder: RecordingEmitter) -> None:
    for number, (topic, payload) in enumerate(messages):
        handler.handle(Message(topic, payload, 1_700_000_000_000_000 + number))
    check(recorder)


MAPPINGS = [
    TopicMapping.model_validate(m)
    for m in (
        {"topic": "plant/{line}/{device}/{metric}", "device_id": "{line}-{device}", "unit": "C"},
        {"topic": "json/{device}", "value_path": "$.value"},
        {"topic": "text/{device}/{metric}", "kind": "text"},
        {"topic": "avail/{device}", "kind": "availability"},
        {
            "topic": "fields/{device}/state",
            "fields": [
                {"path": "$.env.temperature", "metric": "temperature"},
                {"path": "a.b[0]", "optional": True},
                {"path": "$['odd key']", "kind": "text", "optional": True},
            ],
        },
    )
]
generic_topics = st.sampled_from(
    ["plant/l1/p1/flow", "json/p2", "text/p3/mode", "avail/p4", "fields/p5/state", "other/x"]
) | st.text(max_size=30)


@given(st.lists(st.tuples(generic_topics, payloads), min_size=1, max_size=8))
def test_generic_mappings_read_or_dead_letter_anything(messages: list[tuple[str, bytes]]) -> None:
    recorder = RecordingEmitter()
    run(GenericMappings(MAPPINGS, Output(recorder, {})), messages, recorder)


exposes = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["numeric", "binary", "enum", "light", "switch", "text"])},
        optional={
            "property": st.text(max_size=10),
            "unit": st.text(max_size=4) | st.integers(),
            "value_on": scalars,
            "value_off": scalars,
            "features": st.lists(documents, max_size=2),
        },
    ),
    max_size=4,
)
z2m_device = st.fixed_dictionaries(
    {},
    optional={
        "ieee_address": st.sampled_from(["0x01", "0x02"]) | scalars,
        "friendly_name": st.sampled_from(["kitchen", "kitchen/light", "a/b/c"]) | scalars,
        "type": st.sampled_from(["Router", "EndDevice", "Coordinator"]) | scalars,
        "definition": st.none() | st.fixed_dictionaries({}, optional={"exposes": exposes}),
    },
)
z2m_messages = st.one_of(
    st.tuples(st.just("zigbee2mqtt/bridge/devices"), st.lists(z2m_device, max_size=3).map(as_json)),
    st.tuples(st.just("zigbee2mqtt/bridge/devices"), payloads),
    st.tuples(st.sampled_from(["zigbee2mqtt/bridge/state", "zigbee2mqtt/bridge/event"]), payloads),
    st.tuples(
        st.sampled_from(["zigbee2mqtt/kitchen", "zigbee2mqtt/kitchen/light", "zigbee2mqtt/x/y"]),
        payloads,
    ),
    st.tuples(st.sampled_from(["zigbee2mqtt/kitchen/availability"]), payloads),
    st.tuples(st.text(max_size=30).map(lambda t: f"zigbee2mqtt/{t}"), payloads),
)


@given(st.lists(z2m_messages, min_size=1, max_size=8))
def test_zigbee2mqtt_takes_anything(messages: list[tuple[str, bytes]]) -> None:
    recorder = RecordingEmitter()
    timers: list[Callable[[], None]] = []
    bridge = Zigbee2Mqtt(
        Zigbee2MqttPreset.model_validate({}),
        Output(recorder, {}),
        lambda _delay, call: timers.append(call),
    )
    run(bridge, messages, recorder)
    for release in timers:  # the wait for the device list ends: held states are read
        release()
    check(recorder)


class Subscriptions:
    def __init__(self) -> None:
        self.filters: set[str] = set()

    def subscribe(self, filters: list[str], *, resend_retained: bool = False) -> None:
        self.filters.update(filters)

    def unsubscribe(self, filters: list[str]) -> None:
        self.filters.difference_update(filters)


templates = st.sampled_from(
    [
        "{{ value_json.temperature }}",
        "{{ value | float }}",
        "{{ value_json['a b'][0] | round(1) }}",
        "{{ (value | int) / 10 }}",
        "{{ value_json.state if value_json.state else 'off' }}",
    ]
) | st.text(max_size=40)
discovery_config = st.fixed_dictionaries(
    {},
    optional={
        "state_topic": st.sampled_from(["home/sensor/state", "~/state"]) | scalars,
        "stat_t": st.sampled_from(["home/sensor/state"]) | scalars,
        "~": st.sampled_from(["home/sensor"]) | scalars,
        "unique_id": st.sampled_from(["u1", "u2"]) | scalars,
        "name": scalars,
        "value_template": templates | scalars,
        "device_class": scalars,
        "state_class": scalars,
        "unit_of_measurement": scalars,
        "payload_on": scalars,
        "payload_off": scalars,
        "availability_topic": st.sampled_from(["home/sensor/avail"]) | scalars,
        "availability": st.lists(documents, max_size=2),
        "device": documents,
        "dev": documents,
        "schema": st.sampled_from(["json"]) | scalars,
    },
)
ha_messages = st.one_of(
    st.tuples(
        st.sampled_from(
            [
                "homeassistant/sensor/node/temp/config",
                "homeassistant/binary_sensor/door/config",
                "homeassistant/light/lamp/config",
            ]
        ),
        discovery_config.map(as_json) | payloads,
    ),
    st.tuples(st.sampled_from(["homeassistant/sensor/node/temp/config"]), st.just(b"")),
    st.tuples(
        st.sampled_from(["home/sensor/state", "home/sensor/avail", "homeassistant/status"]),
        payloads,
    ),
    st.tuples(st.text(max_size=30).map(lambda t: f"homeassistant/{t}"), payloads),
)


@given(st.lists(ha_messages, min_size=1, max_size=8))
def test_home_assistant_discovery_takes_anything(messages: list[tuple[str, bytes]]) -> None:
    recorder = RecordingEmitter()
    preset = HomeAssistantPreset.model_validate({})
    run(HomeAssistantDiscovery(preset, Output(recorder, {}), Subscriptions()), messages, recorder)


@given(templates, st.one_of(st.text(max_size=30), documents.map(json.dumps)))
def test_a_value_template_compiles_and_renders_or_says_why(text: str, value: str) -> None:
    try:
        template = compile_template(text)
    except TemplateError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    try:
        template.render(value)
    except (TemplateError, MissingValue) as exc:
        assert isinstance(exc, MissingValue) or (str(exc) and "\n" not in str(exc))
