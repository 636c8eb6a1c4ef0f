"""Home Assistant state objects -> Readings and DeviceEvents, and the naming rules."""

from __future__ import annotations

import calendar
from typing import Any

import pytest
from pydantic import ValidationError

from sentio_iot.errors import DataError
from sentio_iot.producers.homeassistant_ws.config import HomeAssistantWsConfig
from sentio_iot.producers.homeassistant_ws.states import (
    DeviceInfo,
    EntityNames,
    entity_selected,
    map_state,
    names_for,
    parse_time_us,
)
from sentio_iot.records import DeviceEvent, EventKind, Metric, Quality, Reading

CHANGED = "2016-11-26T01:37:20.000001+00:00"
UPDATED = "2016-11-26T01:37:24.265390+00:00"
CHANGED_US = calendar.timegm((2016, 11, 26, 1, 37, 20)) * 1_000_000 + 1
UPDATED_US = calendar.timegm((2016, 11, 26, 1, 37, 24)) * 1_000_000 + 265_390
LABELS = {"tenant": "acme", "site": "home"}
NAMES = EntityNames(device_id="kitchen_temperature", metric="temperature")
ENTITY = "sensor.kitchen_temperature"


def config(**fields: Any) -> HomeAssistantWsConfig:
    return HomeAssistantWsConfig(access_token="t0ken", **fields)


def state(value: str, **attributes: Any) -> dict[str, Any]:
    return {
        "entity_id": ENTITY,
        "state": value,
        "attributes": attributes,
        "last_changed": CHANGED,
        "last_updated": UPDATED,
        "context": {"id": "01J", "parent_id": None, "user_id": None},
    }


def mapped(new_state: dict[str, Any] | None, previous: str | None = None) -> list[Any]:
    return map_state(
        ENTITY, new_state, previous=previous, names=NAMES, removed_at_us=42, labels=LABELS
    )


def event(kind: EventKind, message: str, ts_us: int = CHANGED_US, **details: str) -> DeviceEvent:
    return DeviceEvent(
        "kitchen_temperature",
        ts_us,
        kind,
        message,
        "homeassistant_ws",
        {"entity_id": ENTITY, **details},
        LABELS,
    )


def reading(metric: Metric) -> Reading:
    labels = {**LABELS, "entity_id": ENTITY}
    return Reading("kitchen_temperature", UPDATED_US, [metric], "homeassistant_ws", labels)


def test_timestamps_become_exact_microseconds() -> None:
    assert parse_time_us(UPDATED) == UPDATED_US
    assert parse_time_us("2016-11-26T03:37:24.265390+02:00") == UPDATED_US
    assert parse_time_us("2016-11-26T01:37:24.265390Z") == UPDATED_US
    assert parse_time_us("2016-11-26T01:37:24+00:00") == UPDATED_US - 265_390
    assert parse_time_us("1970-01-01T00:00:00.000001+00:00") == 1
    with pytest.raises(DataError, match="not ISO 8601"):
        parse_time_us("yesterday")
    with pytest.raises(DataError, match="not an ISO 8601 string"):
        parse_time_us(1480124244)


def test_number_with_unit_is_a_reading_at_last_updated() -> None:
    new = state("21.5", unit_of_measurement="°C", device_class="temperature")
    assert mapped(new) == [reading(Metric("temperature", 21.5, "°C", Quality.GOOD))]


def test_number_with_state_class_but_no_unit_is_a_reading_without_unit() -> None:
    new = state("17", state_class="measurement", friendly_name="AQI")
    assert mapped(new, previous="12") == [reading(Metric("temperature", 17.0, None))]


def test_number_without_unit_or_state_class_is_an_info_event() -> None:
    new = state("3", friendly_name="Kitchen scene")
    expected = event(
        EventKind.INFO,
        "sensor.kitchen_temperature is 3",
        friendly_name="Kitchen scene",
        state="3",
        previous_state="2",
    )
    assert mapped(new, previous="2") == [expected]


def test_text_state_is_an_info_event_once_per_change() -> None:
    new = state("on", friendly_name="Kitchen light")
    expected = event(
        EventKind.INFO,
        "sensor.kitchen_temperature is on",
        friendly_name="Kitchen light",
        state="on",
    )
    assert mapped(new) == [expected]
    assert mapped(new, previous="on") == []  # only attributes changed


def test_unavailable_is_offline_once_then_online_with_the_value() -> None:
    offline = event(EventKind.OFFLINE, "sensor.kitchen_temperature is unavailable")
    assert mapped(state("unavailable", unit_of_measurement="°C"), previous="21.5") == [offline]
    assert mapped(state("unavailable", unit_of_measurement="°C"), previous="unavailable") == []
    back = mapped(state("22", unit_of_measurement="°C"), previous="unavailable")
    assert back == [
        event(EventKind.ONLINE, "sensor.kitchen_temperature is available again"),
        reading(Metric("temperature", 22.0, "°C")),
    ]


def test_unknown_measurement_is_a_reading_without_value() -> None:
    new = state("unknown", unit_of_measurement="W", device_class="power")
    metric = Metric("temperature", None, "W", Quality.UNCERTAIN, text="unknown")
    assert mapped(new, previous="21.5") == [reading(metric)]


def test_unknown_text_entity_is_an_info_event() -> None:
    expected = event(
        EventKind.INFO,
        "sensor.kitchen_temperature is unknown",
        state="unknown",
        previous_state="on",
    )
    assert mapped(state("unknown"), previous="on") == [expected]


def test_removed_entity_is_a_removed_event_at_the_time_fired() -> None:
    expected = event(EventKind.REMOVED, "entity sensor.kitchen_temperature was removed", ts_us=42)
    assert mapped(None, previous="21.5") == [expected]


def test_non_finite_number_is_not_a_reading() -> None:
    records = mapped(state("nan", unit_of_measurement="°C"))
    assert [r.kind for r in records] == [EventKind.INFO]


def test_malformed_state_objects_are_data_errors() -> None:
    with pytest.raises(DataError, match=r"'state' is 21\.5, not a string"):
        mapped({**state("x"), "state": 21.5})
    with pytest.raises(DataError, match="not ISO 8601"):
        mapped({**state("1", unit_of_measurement="W"), "last_updated": "soon"})
    with pytest.raises(DataError, match="none of last_changed, last_updated"):
        mapped({"entity_id": ENTITY, "state": "on", "attributes": {}})


def test_default_names_are_object_id_and_device_class_or_value() -> None:
    attributes = {"device_class": "temperature"}
    assert names_for(ENTITY, attributes, config(), {}) == NAMES
    assert names_for(ENTITY, {}, config(), {}) == EntityNames("kitchen_temperature", "value")


def test_naming_modes_and_overrides() -> None:
    devices = {ENTITY: DeviceInfo("9f2c3a", "Kitchen Sensor (2)")}
    attributes = {"device_class": "temperature"}
    by_entity = config(device_id_from="entity_id", metric_from="object_id")
    assert names_for(ENTITY, attributes, by_entity, devices) == EntityNames(
        ENTITY, "kitchen_temperature"
    )
    by_device = config(device_id_from="device_id")
    assert names_for(ENTITY, attributes, by_device, devices).device_id == "9f2c3a"
    by_name = config(device_id_from="device_name")
    assert names_for(ENTITY, attributes, by_name, devices).device_id == "kitchen_sensor_2"
    unnamed = {ENTITY: DeviceInfo("9f2c3a")}
    assert names_for(ENTITY, attributes, by_name, unnamed).device_id == "9f2c3a"
    assert names_for(ENTITY, attributes, by_name, {}).device_id == "kitchen_temperature"
    overridden = config(device_id_from="device_id", overrides={ENTITY: {"metric": "air_temp"}})
    assert names_for(ENTITY, attributes, overridden, devices) == EntityNames("9f2c3a", "air_temp")


def test_entity_filter_includes_then_excludes() -> None:
    everything = config()
    assert entity_selected("light.porch", everything)
    chosen = config(
        include_domains=["sensor"],
        include_entities=["light.kitchen_*"],
        exclude_entities=["sensor.*_battery"],
        exclude_domains=["light"],
    )
    assert entity_selected(ENTITY, chosen)
    assert not entity_selected("sensor.door_battery", chosen)
    assert not entity_selected("light.kitchen_ceiling", chosen)  # exclude wins
    assert not entity_selected("switch.pump", chosen)


def test_config_needs_exactly_one_token_source_and_a_websocket_url() -> None:
    with pytest.raises(ValidationError, match="exactly one of access_token or access_token_env"):
        HomeAssistantWsConfig()
    with pytest.raises(ValidationError, match="exactly one of access_token or access_token_env"):
        HomeAssistantWsConfig(access_token="a", access_token_env="HA_TOKEN")
    with pytest.raises(ValidationError, match="not a WebSocket URL"):
        HomeAssistantWsConfig(access_token="a", url="http://ha:8123/api/websocket")
    assert "t0ken" not in repr(config())
