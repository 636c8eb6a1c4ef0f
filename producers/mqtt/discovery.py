"""Home Assistant MQTT discovery configs: abbreviations, ``~`` base topics, one entity each.

A config arrives on ``<prefix>/<component>/[<node_id>/]<object_id>/config`` as JSON. Keys may be
abbreviated (``stat_t`` for ``state_topic``, ``dev`` for ``device``, ``ids`` inside it...), and
a ``~`` key gives a base that topics starting or ending with ``~`` are completed with, as in
Home Assistant's own discovery. :func:`parse_entity` gives the parts Sentio reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sentio_iot.producers.mqtt.config import HaDeviceIdSource, HaMetricSource, HomeAssistantPreset
from sentio_iot.producers.mqtt.payloads import PayloadError, decode_json
from sentio_iot.producers.mqtt.templates import TemplateError, ValueTemplate, compile_template

# The abbreviations of the keys Sentio reads (Home Assistant accepts many more, for commands).
ABBREVIATIONS = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "cmd_t": "command_topic",
    "dev": "device",
    "dev_cla": "device_class",
    "ent_cat": "entity_category",
    "json_attr_t": "json_attributes_topic",
    "name": "name",
    "obj_id": "object_id",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "stat_cla": "state_class",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "stat_val_tpl": "state_value_template",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}
DEVICE_ABBREVIATIONS = {
    "cns": "connections",
    "cu": "configuration_url",
    "hw": "hw_version",
    "ids": "identifiers",
    "mdl": "model",
    "mdl_id": "model_id",
    "mf": "manufacturer",
    "name": "name",
    "sa": "suggested_area",
    "sn": "serial_number",
    "sw": "sw_version",
}
NO_VALUE = frozenset({"", "None", "none", "unknown", "unavailable"})


@dataclass(frozen=True)
class DiscoveryTopic:
    """The parts of a discovery topic."""

    component: str
    node_id: str | None
    object_id: str

    @classmethod
    def parse(cls, topic: str, prefix: str) -> DiscoveryTopic | None:
        """Parts of ``<prefix>/<component>/[<node_id>/]<object_id>/config``; None for other topics."""
        if not topic.startswith(prefix + "/") or not topic.endswith("/config"):
            return None
        levels = topic[len(prefix) + 1 : -len("/config")].split("/")
        if len(levels) == 2:
            return cls(levels[0], None, levels[1])
        if len(levels) == 3:
            return cls(levels[0], levels[1], levels[2])
        return None


@dataclass(frozen=True)
class Availability:
    """One availability topic and the payloads meaning online and offline."""

    topic: str
    online: str = "online"
    offline: str = "offline"
    template: ValueTemplate | None = None


@dataclass(frozen=True)
class DiscoveredEntity:
    """One entity from a discovery config, as Sentio reads it."""

    discovery_topic: str
    component: str
    unique_id: str | None
    device_id: str
    metric: str
    state_topic: str
    template: ValueTemplate | None
    unit: str | None
    device_class: str | None
    state_class: str | None
    on: str | None  # the state payload meaning on (switches, binary sensors, lights)
    off: str | None
    availability: tuple[Availability, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def numeric_only(self) -> bool:
        """A sensor with a unit or state class must have numbers (Home Assistant agrees)."""
        return self.component == "number" or bool(self.unit or self.state_class)


def expand(config: dict[str, Any]) -> dict[str, Any]:
    """Full key names, and topics completed with the ``~`` base."""
    full = {ABBREVIATIONS.get(k, k): v for k, v in config.items()}
    if isinstance(full.get("device"), dict):
        full["device"] = {DEVICE_ABBREVIATIONS.get(k, k): v for k, v in full["device"].items()}
    if isinstance(full.get("availability"), list):
        full["availability"] = [
            {ABBREVIATIONS.get(k, k): v for k, v in a.items()} if isinstance(a, dict) else a
            for a in full["availability"]
        ]
    base = full.pop("~", None)
    if isinstance(base, str):
        for key, value in full.items():
            if key.endswith("topic") and isinstance(value, str):
                full[key] = _with_base(value, base)
        for entry in full.get("availability") or []:
            if isinstance(entry, dict) and isinstance(entry.get("topic"), str):
                entry["topic"] = _with_base(entry["topic"], base)
    return full


def _with_base(topic: str, base: str) -> str:
    if topic.startswith("~"):
        return base + topic[1:]
    if topic.endswith("~"):
        return topic[:-1] + base
    return topic


def parse_entity(
    topic: str, where: DiscoveryTopic, payload: bytes, preset: HomeAssistantPreset
) -> DiscoveredEntity:
    """The entity a config announces; PayloadError (with the reason) when Sentio cannot read it."""
    config = decode_json(payload)
    if not isinstance(config, dict):
        raise PayloadError("a discovery config must be a JSON object")
    config = expand(config)
    state_topic = config.get("state_topic")
    if not isinstance(state_topic, str) or not state_topic:
        raise PayloadError(f"{where.component} config without state_topic: nothing to read")
    device: dict[str, Any] = config["device"] if isinstance(config.get("device"), dict) else {}
    unique_id = _text(config.get("unique_id"))
    on, off = _on_off(where.component, config)
    try:
        template_text = config.get("value_template") or config.get("state_value_template")
        template = compile_template(str(template_text)) if template_text else None
        if where.component == "light" and config.get("schema") == "json" and template is None:
            template = compile_template("{{ value_json.state }}")
        availability = _availability(config)
    except TemplateError as exc:
        raise PayloadError(f"value template not supported: {exc}") from exc
    return DiscoveredEntity(
        discovery_topic=topic,
        component=where.component,
        unique_id=unique_id,
        device_id=_device_id(where, unique_id, device, preset),
        metric=_metric(where, config, preset),
        state_topic=state_topic,
        template=template,
        unit=_text(config.get("unit_of_measurement")),
        device_class=_text(config.get("device_class")),
        state_class=_text(config.get("state_class")),
        on=on,
        off=off,
        availability=availability,
        labels=_labels(device),
    )


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _on_off(component: str, config: dict[str, Any]) -> tuple[str | None, str | None]:
    if component not in ("binary_sensor", "switch", "light"):
        return None, None
    on = str(config.get("payload_on", "ON"))
    off = str(config.get("payload_off", "OFF"))
    if component == "switch":  # a switch reports state_on/state_off, defaulting to its payloads
        return str(config.get("state_on", on)), str(config.get("state_off", off))
    return on, off


def _availability(config: dict[str, Any]) -> tuple[Availability, ...]:
    online = str(config.get("payload_available", "online"))
    offline = str(config.get("payload_not_available", "offline"))
    shared = config.get("availability_template")
    found: list[Availability] = []
    if isinstance(config.get("availability_topic"), str):
        template = compile_template(str(shared)) if shared else None
        found.append(Availability(config["availability_topic"], online, offline, template))
    for entry in config.get("availability") or []:
        if isinstance(entry, dict) and isinstance(entry.get("topic"), str):
            own = entry.get("value_template")
            found.append(
                Availability(
                    entry["topic"],
                    str(entry.get("payload_available", "online")),
                    str(entry.get("payload_not_available", "offline")),
                    compile_template(str(own)) if own else None,
                )
            )
    return tuple(found)


def _device_id(
    where: DiscoveryTopic,
    unique_id: str | None,
    device: dict[str, Any],
    preset: HomeAssistantPreset,
) -> str:
    if preset.device_id_from is HaDeviceIdSource.DEVICE:
        identifiers = device.get("identifiers")
        if isinstance(identifiers, list) and identifiers:
            return str(identifiers[0])
        if isinstance(identifiers, str) and identifiers:
            return identifiers
    if unique_id:
        return unique_id
    return f"{where.node_id}_{where.object_id}" if where.node_id else where.object_id


def _metric(where: DiscoveryTopic, config: dict[str, Any], preset: HomeAssistantPreset) -> str:
    if preset.metric_from is HaMetricSource.NAME and config.get("name"):
        return _slug(str(config["name"]))
    if preset.metric_from is HaMetricSource.DEVICE_CLASS and config.get("device_class"):
        return str(config["device_class"])
    return where.object_id


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in text.lower())
    return "_".join(part for part in slug.split("_") if part) or "value"


def _labels(device: dict[str, Any]) -> dict[str, str]:
    names = {"name": "device_name", "manufacturer": "manufacturer", "model": "model"}
    return {label: str(device[key]) for key, label in names.items() if device.get(key)}
