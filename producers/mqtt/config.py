"""MQTT source configuration: one broker, what to subscribe to and how topics become readings.

Generic mappings turn topics into readings by pattern (syntax in ``patterns.py``)::

    mappings:
      - topic: plant/{line}/{device}/{metric}     # plain numbers, true/false or ON/OFF
        unit: degC
        labels: {line: "{line}"}
      - topic: sensors/{device}/state              # one JSON object, several metrics
        fields:
          - {path: $.env.temperature, metric: temperature, unit: degC}
          - {path: humidity, unit: "%"}

A topic is handled by the first mapping that matches it, in the order written. The
``zigbee2mqtt`` and ``homeassistant`` presets read those two conventions without mappings.
Messages are subscribed at QoS 1 in a persistent session (fixed client id, session expiry),
so what is published while the connector is away arrives when it reconnects.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from sentio_iot.mqtt_tls import MqttTls
from sentio_iot.producers.mqtt.patterns import TopicPattern, template_fields
from sentio_iot.producers.mqtt.payloads import FieldPath


class ValueKind(StrEnum):
    """What a mapped value must be."""

    NUMBER = "number"  # numbers, true/false and ON/OFF (as 1/0); anything else is a dead letter
    TEXT = "text"  # kept as text (Metric.text), e.g. a firmware version or an enum state
    AVAILABILITY = "availability"  # online/offline (or 1/0...): ONLINE/OFFLINE events, no metric


class FieldMapping(BaseModel):
    """One value inside a JSON payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(..., description="Field path: $.a.b[0], a.b[0] or $['odd key'].")
    metric: str | None = Field(
        None,
        min_length=1,
        description="Metric name (may use captures); default: the last name in path.",
    )
    unit: str | None = Field(None, description="Unit of the value, e.g. 'degC'.")
    kind: ValueKind = Field(ValueKind.NUMBER, description="number or text.")
    optional: bool = Field(
        False, description="A payload without this field is fine (else: dead letter)."
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        FieldPath.parse(value)
        return value

    @property
    def metric_name(self) -> str:
        if self.metric:
            return self.metric
        last = [s for s in FieldPath.parse(self.path).steps if isinstance(s, str)]
        return last[-1] if last else "value"


class TopicMapping(BaseModel):
    """Topics matching a pattern, and how their payloads become a reading.

    A topic is read by the first mapping that matches it. Without ``fields`` the payload (or
    the value at ``value_path``) is one metric: a number, true/false or ON/OFF (1/0); with
    ``kind: text`` any text; with ``kind: availability`` online/offline (also true/false,
    1/0, or JSON ``{"state": "online"}``) gives ONLINE/OFFLINE events instead of a reading.
    ``fields`` read several values of one JSON payload into one reading; each entry has
    ``path`` (required), ``metric`` (default: the last name in the path), ``unit``,
    ``kind`` (number or text) and ``optional`` (a missing field is not an error).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(
        ...,
        description="Topic pattern: MQTT levels with + and #, {name} (one level) and {name#} (the rest).",
    )
    device_id: str = Field(
        "{device}", min_length=1, description="Device id template, e.g. '{site}-{device}'."
    )
    metric: str | None = Field(
        None,
        min_length=1,
        description="Metric name template for a single value; default '{metric}' if captured, else 'value'.",
    )
    value_path: str | None = Field(
        None,
        description="Field path of the single value in a JSON payload; none: the whole payload.",
    )
    unit: str | None = Field(None, description="Unit of the single value.")
    kind: ValueKind = Field(
        ValueKind.NUMBER, description="number, text or availability, for the single value."
    )
    fields: list[FieldMapping] = Field(
        default_factory=list,
        description="Several values from one JSON payload (instead of metric/value_path/unit).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels of the readings; values may use captures."
    )

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        TopicPattern.parse(value)
        return value

    @field_validator("value_path")
    @classmethod
    def _check_value_path(cls, value: str | None) -> str | None:
        if value is not None:
            FieldPath.parse(value)
        return value

    @model_validator(mode="after")
    def _check_captures(self) -> Self:
        captures = set(TopicPattern.parse(self.topic).captures)
        if self.fields and (self.metric or self.value_path or self.unit):
            raise ValueError("use either fields or metric/value_path/unit, not both")
        if self.fields and self.kind is ValueKind.AVAILABILITY:
            raise ValueError("kind availability reads one value: remove fields or use value_path")
        for index, item in enumerate(self.fields):
            if item.kind is ValueKind.AVAILABILITY:
                raise ValueError(f"fields[{index}].kind: availability is for a whole mapping")
        templates = {"device_id": self.device_id, "metric": self.metric_template}
        templates.update({f"labels.{k}": v for k, v in self.labels.items()})
        templates.update({f"fields[{i}].metric": f.metric_name for i, f in enumerate(self.fields)})
        for where, template in templates.items():
            for name in template_fields(template):
                if name not in captures:
                    known = ", ".join(sorted(captures)) or "none"
                    raise ValueError(
                        f"{where} uses {{{name}}} but topic '{self.topic}' captures {known}; "
                        f"capture it in the topic or change {where}"
                    )
        names = [f.metric_name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError("two fields give the same metric name; set metric on one of them")
        return self

    @property
    def metric_template(self) -> str:
        if self.metric:
            return self.metric
        return "{metric}" if "metric" in TopicPattern.parse(self.topic).captures else "value"


class DeviceIdSource(StrEnum):
    """Which Zigbee2MQTT name becomes the device id."""

    IEEE_ADDRESS = "ieee_address"  # stable: survives renaming in Zigbee2MQTT
    FRIENDLY_NAME = "friendly_name"  # readable: changes when the device is renamed


class Zigbee2MqttPreset(BaseModel):
    """Read a Zigbee2MQTT bridge: devices, their state, availability and bridge events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_topic: str = Field(
        "zigbee2mqtt", min_length=1, description="Zigbee2MQTT's base_topic setting."
    )
    device_id_from: DeviceIdSource = Field(
        DeviceIdSource.IEEE_ADDRESS, description="Device id: ieee_address or friendly_name."
    )
    bridge_device_id: str = Field(
        "zigbee2mqtt-bridge", min_length=1, description="Device id of the bridge's own events."
    )
    text_values: bool = Field(
        True, description="Keep non-numeric state values (e.g. an action) as text metrics."
    )
    exclude_fields: list[str] = Field(
        default_factory=lambda: ["last_seen", "update", "update_available"],
        description="State fields that are not metrics.",
    )
    devices_wait_s: float = Field(
        10.0,
        ge=0,
        description="How long to hold state of unknown devices until bridge/devices arrives.",
    )

    @field_validator("base_topic")
    @classmethod
    def _check_base_topic(cls, value: str) -> str:
        if any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
            raise ValueError(f"'{value}' must be a topic without wildcards or outer '/'")
        return value


class HaDeviceIdSource(StrEnum):
    """Which Home Assistant discovery name becomes the device id."""

    DEVICE = "device"  # the device's first identifier; else the entity's unique_id
    UNIQUE_ID = "unique_id"  # one device per entity


class HaMetricSource(StrEnum):
    """Which Home Assistant discovery name becomes the metric name."""

    OBJECT_ID = "object_id"
    NAME = "name"
    DEVICE_CLASS = "device_class"


class HomeAssistantPreset(BaseModel):
    """Read devices announced by Home Assistant MQTT discovery (configs under the prefix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    discovery_prefix: str = Field(
        "homeassistant", min_length=1, description="Home Assistant's discovery prefix."
    )
    components: list[str] = Field(
        default_factory=lambda: ["sensor", "binary_sensor", "switch", "number", "light"],
        description="Entity components to read; others are ignored.",
    )
    device_id_from: HaDeviceIdSource = Field(
        HaDeviceIdSource.DEVICE, description="Device id: device (identifiers) or unique_id."
    )
    metric_from: HaMetricSource = Field(
        HaMetricSource.OBJECT_ID, description="Metric name: object_id, name or device_class."
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
            raise ValueError(f"'{value}' must be a topic without wildcards or outer '/'")
        return value


class MqttSourceConfig(BaseModel):
    """One MQTT broker and what to read from it.

    Topic patterns are MQTT filters whose levels may be captures: ``{name}`` matches one level,
    ``{name#}`` the remaining levels (last only); ``+`` and ``#`` work as in MQTT. Device ids,
    metric names and label values are templates over the captures, e.g.
    ``topic: plant/{line}/{device}/{metric}`` with ``device_id: "{line}-{device}"``.
    Field paths: ``$.a.b[0]``, ``a.b[0]`` or ``$['odd key']``. Payloads that cannot be read
    go to the dead-letter topic with the reason. Subscriptions use QoS 1 in a persistent
    session (fixed client id, ``session_expiry_s``), so messages published while the
    connector is away arrive when it reconnects; QoS 1 is at least once, so a message whose
    acknowledgement was lost in a disconnect arrives twice. Presets: ``zigbee2mqtt: {}`` and
    ``homeassistant: {}`` (MQTT discovery); a topic goes to Zigbee2MQTT first, then Home
    Assistant discovery, then the mappings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_id: str = Field(
        "mqtt",
        min_length=1,
        description="Names this source: device id of the broker's CONNECTED/DISCONNECTED events.",
    )
    host: str = Field("127.0.0.1", min_length=1, description="Broker host name or IP.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 usually with TLS).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Fixed client id (the broker keeps our session under it); default sentio-<source_id>.",
    )
    username: str | None = Field(None, description="User name, if the broker wants one.")
    password: SecretStr | None = Field(None, description="Password (never logged).")
    tls: bool = Field(
        False,
        description="Connect with TLS; the broker's certificate and host name are verified.",
    )
    ca_file: str | None = Field(
        None,
        description="CA certificates (PEM) trusted to issue the broker's certificate; default: the system's.",
    )
    cert_file: str | None = Field(
        None,
        description="Client certificate (PEM) shown to a broker that asks for one (Mosquitto require_certificate); needs key_file.",
    )
    key_file: str | None = Field(None, description="Private key (PEM) of cert_file.")
    key_password: SecretStr | None = Field(
        None, description="Password of an encrypted key_file (never logged)."
    )
    qos: Literal[0, 1, 2] = Field(
        1, description="Subscription QoS; 1 or 2 keep messages while we are away, 0 does not."
    )
    session_expiry_s: int = Field(
        86400,
        ge=0,
        description="How long the broker keeps our session (and queues messages) while we are away.",
    )
    keepalive_s: int = Field(30, ge=5, le=65535, description="MQTT keep-alive in seconds.")
    reconnect_min_s: int = Field(1, ge=1, description="First wait before reconnecting.")
    reconnect_max_s: int = Field(60, ge=1, description="Longest wait between reconnects.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every reading."
    )
    mappings: list[TopicMapping] = Field(
        default_factory=list, description="Topic patterns and how they become readings."
    )
    zigbee2mqtt: Zigbee2MqttPreset | None = Field(
        None, description="Read a Zigbee2MQTT bridge ({} for the defaults)."
    )
    homeassistant: HomeAssistantPreset | None = Field(
        None, description="Read Home Assistant MQTT discovery ({} for the defaults)."
    )

    @model_validator(mode="after")
    def _check_something_to_read(self) -> Self:
        if not self.mappings and self.zigbee2mqtt is None and self.homeassistant is None:
            raise ValueError("nothing to read: add mappings, zigbee2mqtt: {} or homeassistant: {}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        for name in ("ca_file", "cert_file", "key_file"):
            if getattr(self, name) and not self.tls:
                raise ValueError(f"{name} is set but tls is false; set tls: true")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        if self.key_password is not None and self.key_file is None:
            raise ValueError("key_password is set but key_file is not")
        return self

    def tls_settings(self) -> MqttTls:
        return MqttTls(
            f"producers.mqtt source {self.source_id}",
            self.ca_file,
            self.cert_file,
            self.key_file,
            self.key_password,
        )

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"sentio-{self.source_id}"
