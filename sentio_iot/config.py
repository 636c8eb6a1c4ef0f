"""Typed configuration: one YAML file per deployment, environment variables on top.

``load_config(path)`` returns a validated :class:`SentioConfig` or raises one
:class:`~sentio_iot.errors.ConfigError` that lists every problem at once, each as
``path: what is wrong``. Environment variables override the file:
``SENTIO_KAFKA__BOOTSTRAP_SERVERS=host:9092`` sets ``kafka.bootstrap_servers``.

Connector sections (``producers.<protocol>``) are validated by the config model each
connector plugin declares, so third-party connectors validate the same way ours do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sentio_iot.config_errors import format_validation_error
from sentio_iot.errors import ConfigError
from sentio_iot.settings import Section
from sentio_iot.settings.api import ApiSettings
from sentio_iot.settings.sinks import SinkSettings
from sentio_iot.settings.streams import StreamSettings
from sentio_iot.settings.tracing import TracingSettings

ENV_PREFIX = "SENTIO_"


class KafkaSettings(Section):
    """Where the Kafka brokers are and how to reach them."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    client_id: str = Field("sentio", description="Client id prefix reported to the broker.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    extra: dict[str, SecretStr | str | int | bool] = Field(
        default_factory=dict,
        description="Extra librdkafka properties passed verbatim to producers, sinks and the CLI, e.g. {'socket.timeout.ms': 10000}; the stream worker (aiokafka) takes the ssl.* and sasl.* ones and a few others and refuses the rest at start (docs/security.md); those naming a secret (sasl.password, ssl.key.password, sasl.oauthbearer.client.secret, ...) are never shown or logged.",
    )

    @field_validator("extra", mode="before")
    @classmethod
    def _hide_secret_properties(cls, value: Any) -> Any:
        from sentio_iot.secret_values import is_secret_key

        if not isinstance(value, dict):
            return value
        return {
            key: SecretStr(str(item))
            if is_secret_key(key) and not isinstance(item, SecretStr)
            else item
            for key, item in value.items()
        }


class SchemaRegistrySettings(Section):
    """The Confluent-compatible schema registry."""

    url: str = Field(
        "http://127.0.0.1:8081/apis/ccompat/v7",
        description="Confluent-compatible schema registry URL (Apicurio: .../apis/ccompat/v7).",
        pattern=r"^https?://",
    )
    basic_auth: SecretStr | None = Field(
        None, description="'user:password' for the registry (never logged)."
    )
    timeout_s: float = Field(10.0, gt=0, description="HTTP timeout for registry calls.")


class TopicSettings(Section):
    """Topic names and sizes for the catalog."""

    prefix: str = Field(
        "sentio.",
        description="Prefix for every topic name in the catalog.",
        pattern=r"^[A-Za-z0-9._-]*$",
    )
    partitions: int = Field(6, ge=1, le=10000, description="Default partition count.")
    replication_factor: int = Field(
        1, ge=1, le=32, description="Replication factor for new topics."
    )
    partition_overrides: dict[str, int] = Field(
        default_factory=dict, description="Partition count per catalog entry, e.g. {readings: 12}."
    )


class StackSettings(Section):
    """The local stack started by `sentio stack up`: ports, versions, where it keeps files."""

    home: Path = Field(
        Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "sentio-iot",
        description="Folder for downloaded jars and binaries (cache) and the running stack's state.",
    )
    kafka_port: int = Field(9092, ge=1, le=65535, description="Kafka broker port on 127.0.0.1.")
    kafka_controller_port: int = Field(9093, ge=1, le=65535, description="KRaft controller port.")
    registry_port: int = Field(8081, ge=1, le=65535, description="Apicurio Registry HTTP port.")
    victoriametrics_port: int = Field(
        8428, ge=1, le=65535, description="VictoriaMetrics HTTP port."
    )
    victorialogs_port: int = Field(9428, ge=1, le=65535, description="VictoriaLogs HTTP port.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="Mosquitto MQTT port.")
    kafka_version: str = Field("4.1.2", description="org.apache.kafka:kafka_2.13 version.")
    log4j_version: str = Field("2.24.3", description="log4j2 version for the broker's logging.")
    apicurio_version: str = Field("3.0.9", description="io.apicurio:apicurio-registry-app version.")
    keycloak_port: int = Field(
        8180,
        ge=1,
        le=65535,
        description="Keycloak HTTP port (only with `sentio stack up --secure`: the registry's OIDC server).",
    )
    keycloak_version: str = Field(
        "26.5.6", description="org.keycloak:keycloak-quarkus-dist version (needs Java 21+)."
    )
    victorialogs_version: str = Field("v1.52.1", description="VictoriaLogs version built by go.")
    victoriametrics_version: str = Field(
        "v1.151.0", description="VictoriaMetrics version built by go when no binary is installed."
    )
    alertmanager_port: int = Field(
        9095, ge=1, le=65535, description="Alertmanager HTTP port (its default 9093 is Kafka's)."
    )
    alertmanager_version: str = Field("v0.35.0", description="Alertmanager version built by go.")
    alertmanager_webhook_url: str = Field(
        "http://127.0.0.1:9097/alertmanager",
        description="The webhook the local Alertmanager routes every alert to.",
        pattern=r"^https?://",
    )
    start_timeout_s: float = Field(120.0, gt=0, description="How long to wait for a service.")


class ProducerSettings(Section):
    """The publishing runtime of `sentio produce`: store-and-forward buffer, health, Kafka timing.

    While Kafka cannot be reached, readings go to an on-disk buffer (one SQLite file per
    protocol in ``buffer_dir``) and are replayed in order when it returns.
    """

    buffer_dir: Path = Field(
        Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state")))
        / "sentio-iot"
        / "buffer",
        description="Folder of the store-and-forward buffer: one SQLite file per protocol (<protocol>.sqlite).",
    )
    buffer_max_bytes: int = Field(
        1024**3,
        ge=64 * 1024,
        description="Most bytes (keys, values, headers) the buffer keeps before its full policy applies.",
    )
    buffer_full_policy: Literal["drop_oldest", "drop_newest", "block"] = Field(
        "drop_oldest",
        description="When the buffer is full: drop_oldest keeps the newest data, drop_newest keeps the oldest, block stops the connectors until there is room.",
    )
    health_host: str = Field("127.0.0.1", description="Address of the /health and /metrics server.")
    health_port: int = Field(
        9464, ge=0, le=65535, description="Port of the /health and /metrics server; 0 disables it."
    )
    message_timeout_s: float = Field(
        15.0,
        ge=1,
        le=300,
        description="How long Kafka may take to confirm a message before it goes to the buffer.",
    )
    linger_ms: int = Field(
        20,
        ge=0,
        le=5000,
        description="How long the producer waits to fill a batch (latency vs throughput).",
    )


class SentioConfig(BaseSettings):
    """A whole deployment: where Kafka and the registry are, topics, the local stack, workers."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    tenant: str = Field("default", description="Tenant label put on every reading.")
    site: str = Field("local", description="Site label put on every reading.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # type: ignore[arg-type]
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)  # type: ignore[arg-type]
    topics: TopicSettings = Field(default_factory=TopicSettings)  # type: ignore[arg-type]
    stack: StackSettings = Field(default_factory=StackSettings)  # type: ignore[arg-type]
    producer: ProducerSettings = Field(default_factory=ProducerSettings)  # type: ignore[arg-type]
    streams: StreamSettings = Field(default_factory=StreamSettings)  # type: ignore[arg-type]
    sinks: SinkSettings = Field(default_factory=SinkSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    api: ApiSettings = Field(default_factory=lambda: ApiSettings.model_validate({}))
    producers: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="Devices per connector, e.g. producers.modbus: [...]; validated by each connector.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file; the file is passed in as init values.
        # SENTIO_<SECRET>__FILE=/path reads a secret from a file (config_env_files.py).
        from sentio_iot.config_env_files import PlainEnvSource, SecretFileEnvSource

        return PlainEnvSource(settings_cls), SecretFileEnvSource(settings_cls), init_settings


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every way it can fail into a one-line ConfigError
    (limits on size, nesting and alias expansion; duplicate keys refused: see config_yaml)."""
    from sentio_iot.config_yaml import load_yaml, read_yaml_text

    data = load_yaml(read_yaml_text(path), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping (key: value), not {type(data).__name__}"
        )
    return data


def load_config(
    path: Path | str | None = None, data: Mapping[str, Any] | None = None
) -> SentioConfig:
    """Load, validate and return the configuration; raise ConfigError listing every problem."""
    raw: dict[str, Any] = dict(data or {})
    source = "configuration"
    if path is not None:
        raw = read_yaml(Path(path))
        source = str(path)
    problems = [  # YAML allows keys like 1 or [a, b]: keyword arguments do not
        f"(top level): key {key!r} is not a name; keys are names such as kafka or sinks"
        for key in raw
        if not isinstance(key, str)
    ]
    raw = {key: value for key, value in raw.items() if isinstance(key, str)}
    try:
        config = SentioConfig(**raw)
    except ValidationError as exc:
        problems.extend(format_validation_error(exc))
        config = None
    problems.extend(validate_producers(raw.get("producers")))
    if problems or config is None:
        noun = "problem" if len(problems) == 1 else "problems"
        raise ConfigError(f"{source}: {len(problems)} {noun}", problems)
    return config


def validate_producers(section: Any) -> list[str]:
    """Validate each ``producers.<protocol>[i]`` with that connector's own config model."""
    from sentio_iot.plugins import connector_names, load_connector_plugin

    if not isinstance(section, dict):
        return []  # shape errors are reported by SentioConfig itself
    problems: list[str] = []
    for protocol, devices in section.items():
        if protocol not in connector_names():
            installed = ", ".join(connector_names()) or "none"
            shown = (
                protocol if isinstance(protocol, str) and protocol.isprintable() else repr(protocol)
            )
            problems.append(
                f"producers.{shown}: unknown connector {protocol!r}; installed connectors: {installed}"
            )
            continue
        if not isinstance(devices, list):
            continue
        model = load_connector_plugin(protocol).load_config_model()
        for index, device in enumerate(devices):
            try:
                model.model_validate(device)
            except ValidationError as exc:
                problems.extend(
                    format_validation_error(exc, prefix=f"producers.{protocol}[{index}]")
                )
    return problems
