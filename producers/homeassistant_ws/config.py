"""Home Assistant WebSocket API configuration: where, which token, which entities, what names."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class DeviceIdSource(StrEnum):
    """Where a reading's device id comes from."""

    OBJECT_ID = "object_id"
    ENTITY_ID = "entity_id"
    DEVICE_ID = "device_id"
    DEVICE_NAME = "device_name"


class MetricNameSource(StrEnum):
    """Where a reading's metric name comes from."""

    DEVICE_CLASS = "device_class"
    OBJECT_ID = "object_id"


class EntityOverride(BaseModel):
    """Fixed names for one entity, instead of the rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str | None = Field(None, min_length=1, description="Device id of its readings.")
    metric: str | None = Field(None, min_length=1, description="Metric name of its readings.")


class HomeAssistantWsConfig(BaseModel):
    """One Home Assistant instance, read through its WebSocket API with a long-lived token.

    Every selected entity's state becomes records. A number on an entity with a
    `unit_of_measurement` (or a `state_class`) is a reading: `sensor.kitchen_temperature` =
    `21.5` °C with device class `temperature` becomes device `kitchen_temperature` (the entity's
    object id), metric `temperature` (`value` without a device class), timestamped
    `last_updated`; `unknown` there is a reading without value (quality UNCERTAIN).
    `unavailable` is an OFFLINE event, the next state an ONLINE event; a removed entity a
    REMOVED event; any other state (`on`, `heat`, a number without unit) an INFO event with the
    state in its details. `device_id_from: entity_id` keeps the domain; `device_id` and
    `device_name` group all entities of one Home Assistant device under its registry id (stable)
    or its name (readable, changes when renamed); with those, `metric_from: object_id` keeps two
    entities of the same device class apart. `overrides` wins over both rules.

    Tested against Home Assistant core 2024.3.3 (tests/integration/test_homeassistant_real.py):
    readings with Home Assistant's `last_updated`, `unknown` and `unavailable`, removed
    entities, a restart of Home Assistant, a refused token.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: str = Field(
        "homeassistant",
        min_length=1,
        description="Device id of the instance's own CONNECTED/DISCONNECTED events.",
    )
    url: str = Field(
        "ws://127.0.0.1:8123/api/websocket",
        description="WebSocket endpoint: ws://host:8123/api/websocket, or wss:// behind TLS.",
    )
    verify_tls: bool = Field(True, description="Check the server certificate for wss:// URLs.")
    access_token: SecretStr | None = Field(
        None,
        description="Long-lived access token (profile page in Home Assistant); never logged.",
    )
    access_token_env: str | None = Field(
        None,
        min_length=1,
        description="Name of an environment variable holding the token, instead of access_token.",
    )
    include_domains: list[str] = Field(
        default_factory=list,
        description="Only these domains (e.g. sensor); empty: every domain.",
    )
    include_entities: list[str] = Field(
        default_factory=list,
        description="Only entity ids matching these globs (e.g. sensor.kitchen_*); empty: all.",
    )
    exclude_domains: list[str] = Field(
        default_factory=list, description="Skip these domains (wins over include)."
    )
    exclude_entities: list[str] = Field(
        default_factory=list,
        description="Skip entity ids matching these globs (wins over include).",
    )
    device_id_from: DeviceIdSource = Field(
        DeviceIdSource.OBJECT_ID,
        description="Device id of a reading: the entity's object id, its entity id, or its Home Assistant device (registry id or name; needs an admin token, else falls back to object_id).",
    )
    metric_from: MetricNameSource = Field(
        MetricNameSource.DEVICE_CLASS,
        description="Metric name: the entity's device class ('value' without one), or its object id.",
    )
    overrides: dict[str, EntityOverride] = Field(
        default_factory=dict,
        description="Per entity id: a fixed device_id and/or metric.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every reading and event."
    )
    timeout_s: float = Field(
        10.0, gt=0, description="Seconds to wait for the handshake, each answer and each pong."
    )
    ping_interval_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between keepalive pings; no pong within timeout_s: reconnect.",
    )
    reconnect_initial_s: float = Field(
        1.0, gt=0, description="First wait before reconnecting; doubles after each failure."
    )
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest wait between reconnects.")

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, url: str) -> str:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(
                f"'{url}' is not a WebSocket URL; use ws://host:8123/api/websocket (or wss://)"
            )
        return url

    @model_validator(mode="after")
    def _one_token_source(self) -> Self:
        if (self.access_token is None) == (self.access_token_env is None):
            raise ValueError(
                "set exactly one of access_token or access_token_env (the name of an environment variable holding the token)"
            )
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        return self
