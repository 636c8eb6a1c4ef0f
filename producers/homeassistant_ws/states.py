"""Home Assistant state objects -> Readings and DeviceEvents. Pure: no I/O, no clock.

A state object is ``{"entity_id", "state", "attributes", "last_changed", "last_updated", ...}``;
``state`` is always a string. What becomes what:

- a number, on an entity with a ``unit_of_measurement`` or a ``state_class`` (Home Assistant's
  mark of a measurement): a Reading, timestamped ``last_updated``;
- ``unknown`` on such a measurement: a Reading with no value, quality UNCERTAIN;
- ``unavailable``: an OFFLINE event (once), and any state after it an ONLINE event first;
- any other state (``on``, ``heat``, a number without unit): an INFO event with the state in
  its details when the state differs from the previous one, timestamped ``last_changed``;
- no state (the entity was removed): a REMOVED event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sentio_iot.errors import DataError
from sentio_iot.producers.homeassistant_ws.config import (
    DeviceIdSource,
    HomeAssistantWsConfig,
    MetricNameSource,
)
from sentio_iot.records import DeviceEvent, EventKind, Metric, Quality, Reading

SOURCE = "homeassistant_ws"
UNAVAILABLE = "unavailable"
UNKNOWN = "unknown"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

Record = Reading | DeviceEvent


@dataclass(frozen=True)
class DeviceInfo:
    """An entry of Home Assistant's device registry, as far as names need it."""

    id: str
    name: str | None = None


@dataclass(frozen=True)
class EntityNames:
    """What an entity is called in Sentio."""

    device_id: str
    metric: str


def parse_time_us(text: Any) -> int:
    """ISO 8601 (``2016-11-26T01:37:24.265390+00:00``) -> integer µs since the epoch."""
    if not isinstance(text, str):
        raise DataError(f"timestamp {text!r} is not an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise DataError(f"timestamp {text!r} is not ISO 8601") from exc
    if moment.tzinfo is None:  # Home Assistant always sends UTC offsets; assume UTC if not
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_US


def domain_of(entity_id: str) -> str:
    return entity_id.partition(".")[0]


def object_id_of(entity_id: str) -> str:
    domain, dot, rest = entity_id.partition(".")
    return rest if dot else domain


def entity_selected(entity_id: str, config: HomeAssistantWsConfig) -> bool:
    """Include lists (empty: everything), then exclude lists, which win."""
    domain = domain_of(entity_id)
    if config.include_domains or config.include_entities:
        included = domain in config.include_domains or any(
            fnmatchcase(entity_id, glob) for glob in config.include_entities
        )
        if not included:
            return False
    if domain in config.exclude_domains:
        return False
    return not any(fnmatchcase(entity_id, glob) for glob in config.exclude_entities)


def slug(name: str) -> str:
    """``Kitchen Sensor (2)`` -> ``kitchen_sensor_2``."""
    cleaned = "".join(c if c.isalnum() else " " for c in name.lower())
    return "_".join(cleaned.split())


def names_for(
    entity_id: str,
    attributes: Mapping[str, Any],
    config: HomeAssistantWsConfig,
    device_of: Mapping[str, DeviceInfo],
) -> EntityNames:
    """Device id and metric name by the configured rules; overrides win."""
    device_id = object_id_of(entity_id)
    if config.device_id_from is DeviceIdSource.ENTITY_ID:
        device_id = entity_id
    elif config.device_id_from in (DeviceIdSource.DEVICE_ID, DeviceIdSource.DEVICE_NAME):
        device = device_of.get(entity_id)
        if device is not None:
            by_name = config.device_id_from is DeviceIdSource.DEVICE_NAME and device.name
            device_id = slug(device.name) if by_name and device.name else device.id
    device_class = attributes.get("device_class")
    if config.metric_from is MetricNameSource.OBJECT_ID:
        metric = object_id_of(entity_id)
    else:
        metric = device_class if isinstance(device_class, str) and device_class else "value"
    override = config.overrides.get(entity_id)
    if override is not None:
        device_id = override.device_id or device_id
        metric = override.metric or metric
    return EntityNames(device_id=device_id, metric=metric)


def _number(state: str) -> float | None:
    try:
        value = float(state)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _checked(entity_id: str, new_state: Any) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(new_state, Mapping):
        raise DataError(f"{entity_id}: state object is {type(new_state).__name__}, not an object")
    state = new_state.get("state")
    if not isinstance(state, str):
        raise DataError(f"{entity_id}: 'state' is {state!r}, not a string")
    attributes = new_state.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise DataError(f"{entity_id}: 'attributes' is not an object")
    return state, attributes


def _time_of(entity_id: str, new_state: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        if new_state.get(key) is not None:
            return parse_time_us(new_state[key])
    raise DataError(f"{entity_id}: state object has none of {', '.join(keys)}")


def updated_us(entity_id: str, new_state: Mapping[str, Any]) -> int:
    """When the state or its attributes last changed (orders updates of one entity)."""
    return _time_of(entity_id, new_state, "last_updated", "last_changed")


def map_state(
    entity_id: str,
    new_state: Mapping[str, Any] | None,
    *,
    previous: str | None,
    names: EntityNames,
    removed_at_us: int,
    labels: Mapping[str, str],
) -> list[Record]:
    """Records for one entity's new state; ``previous`` is the last state string seen.

    Raises DataError for a state object that does not have the documented shape.
    """
    details = {"entity_id": entity_id}
    if new_state is None:
        message = f"entity {entity_id} was removed"
        return [_event(names, removed_at_us, EventKind.REMOVED, message, details, labels)]
    state, attributes = _checked(entity_id, new_state)
    friendly_name = attributes.get("friendly_name")
    if isinstance(friendly_name, str):
        details["friendly_name"] = friendly_name
    changed_us = _time_of(entity_id, new_state, "last_changed", "last_updated")
    if state == UNAVAILABLE:
        if previous == UNAVAILABLE:
            return []
        message = f"{entity_id} is unavailable"
        return [_event(names, changed_us, EventKind.OFFLINE, message, details, labels)]
    records: list[Record] = []
    if previous == UNAVAILABLE:
        message = f"{entity_id} is available again"
        records.append(_event(names, changed_us, EventKind.ONLINE, message, details, labels))
    unit = attributes.get("unit_of_measurement")
    unit = unit if isinstance(unit, str) and unit else None
    measurement = unit is not None or bool(attributes.get("state_class"))
    value = _number(state)
    if measurement and (value is not None or state == UNKNOWN):
        quality = Quality.GOOD if value is not None else Quality.UNCERTAIN
        metric = Metric(
            names.metric, value, unit, quality, text=None if value is not None else state
        )
        ts_us = updated_us(entity_id, new_state)
        reading_labels = {**labels, "entity_id": entity_id}
        records.append(Reading(names.device_id, ts_us, [metric], SOURCE, reading_labels))
    elif state != previous:
        info = {**details, "state": state}
        if previous is not None:
            info["previous_state"] = previous
        message = f"{entity_id} is {state}"
        records.append(_event(names, changed_us, EventKind.INFO, message, info, labels))
    return records


def _event(
    names: EntityNames,
    ts_us: int,
    kind: EventKind,
    message: str,
    details: dict[str, str],
    labels: Mapping[str, str],
) -> DeviceEvent:
    return DeviceEvent(names.device_id, ts_us, kind, message, SOURCE, dict(details), dict(labels))
