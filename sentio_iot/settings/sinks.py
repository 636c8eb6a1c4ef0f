"""Settings: The sinks (`sentio sink <backend>`): batching, retries and each backend's endpoint."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from sentio_iot.settings import Section
from sentio_iot.settings.alert_delivery import AlertmanagerSinkSettings, WebhookSinkSettings
from sentio_iot.settings.http_auth import HttpAuth as HttpAuth


class VictoriaMetricsSinkSettings(Section):
    """`sentio sink victoriametrics`: readings, rollups, anomalies, RUL and alerts as series."""

    url: str = Field(
        default="http://127.0.0.1:8428",
        description="Base URL of VictoriaMetrics (single node) or vminsert's /insert/<tenant>/prometheus.",
        pattern=r"^https?://",
    )
    method: Literal["import", "remote_write"] = Field(
        default="import",
        description="import: JSON lines to /api/v1/import; remote_write: snappy protobuf to /api/v1/write.",
    )
    auth: HttpAuth = Field(default_factory=HttpAuth)
    timeout_s: float = Field(default=30.0, gt=0, description="HTTP timeout of one write.")
    health_port: int = Field(
        default=9471,
        ge=0,
        le=65535,
        description="Port of this sink's /health and /metrics; 0: none.",
    )


class LokiSinkSettings(Section):
    """`sentio sink loki`: device events, alerts and anomalies as log lines (Loki push API)."""

    url: str = Field(
        default="http://127.0.0.1:9428/insert/loki/api/v1/push",
        description="Push endpoint: Loki's .../loki/api/v1/push or VictoriaLogs' /insert/loki/api/v1/push.",
        pattern=r"^https?://",
    )
    format: Literal["protobuf", "json"] = Field(
        default="protobuf",
        description="protobuf: snappy-compressed PushRequest (Loki's native format); json: the JSON push body.",
    )
    tenant_id: str | None = Field(
        default=None,
        description="Sent as the X-Scope-OrgID header (multi-tenant Loki); none when empty.",
    )
    auth: HttpAuth = Field(default_factory=HttpAuth)
    timeout_s: float = Field(default=30.0, gt=0, description="HTTP timeout of one push.")
    health_port: int = Field(
        default=9472,
        ge=0,
        le=65535,
        description="Port of this sink's /health and /metrics; 0: none.",
    )


class TempoSinkSettings(Section):
    """`sentio sink tempo`: spans from the otlp-spans topic to Tempo's OTLP/HTTP endpoint."""

    url: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="OTLP/HTTP traces endpoint: Tempo's (or a Collector's) .../v1/traces.",
        pattern=r"^https?://",
    )
    tenant_id: str | None = Field(
        default=None,
        description="Sent as the X-Scope-OrgID header (multi-tenant Tempo); none when empty.",
    )
    auth: HttpAuth = Field(default_factory=HttpAuth)
    timeout_s: float = Field(default=30.0, gt=0, description="HTTP timeout of one export.")
    health_port: int = Field(
        default=9473,
        ge=0,
        le=65535,
        description="Port of this sink's /health and /metrics; 0: none.",
    )


class HomeAssistantSinkSettings(Section):
    """`sentio sink homeassistant`: anomaly scores, RUL and alerts as MQTT discovery sensors."""

    host: str = Field(default="127.0.0.1", description="MQTT broker Home Assistant listens to.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    username: str | None = Field(default=None, description="MQTT user name; none when empty.")
    password: SecretStr | None = Field(default=None, description="MQTT password (never logged).")
    tls: bool = Field(
        default=False,
        description="Connect with TLS; the broker's certificate and host name are verified.",
    )
    ca_file: str | None = Field(
        default=None,
        description="CA certificates (PEM) trusted to issue the broker's certificate; default: the system's.",
    )
    cert_file: str | None = Field(
        default=None,
        description="Client certificate (PEM) shown to a broker that asks for one; needs key_file.",
    )
    key_file: str | None = Field(default=None, description="Private key (PEM) of cert_file.")
    key_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted key_file (never logged)."
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT protocol version; with 5 a publish the broker refuses (its ACL, its size limit) is found in its acknowledgement and dead-lettered, with 3.1.1 it cannot be told from a success.",
    )
    client_id: str = Field(
        default="",
        description="MQTT client id; empty: sentio-sink-homeassistant-<host>-<pid>.",
    )
    keepalive_s: int = Field(default=60, ge=5, le=3600, description="MQTT keep-alive interval.")
    qos: Literal[0, 1, 2] = Field(
        default=1,
        description="QoS of discovery, state and availability messages; a batch counts as written once the broker acknowledged them (1, 2).",
    )
    discovery_prefix: str = Field(
        default="homeassistant",
        description="Home Assistant's discovery prefix (its MQTT integration setting).",
        pattern=r"^[^#+]+$",
    )
    base_topic: str = Field(
        default="sentio",
        description="Prefix of the state topics (<base>/<device>/<sensor>/state) and of <base>/availability.",
        pattern=r"^[^#+]+$",
    )
    retain_states: bool = Field(
        default=True,
        description="Retain state messages so Home Assistant shows the last value after a restart.",
    )
    expire_after_s: int = Field(
        default=0,
        ge=0,
        description="Home Assistant marks a sensor unavailable this long after its last state; 0: never.",
    )
    publish_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long the broker may take to acknowledge a batch before it is retried.",
    )
    health_port: int = Field(
        default=9474,
        ge=0,
        le=65535,
        description="Port of this sink's /health and /metrics; 0: none.",
    )

    @model_validator(mode="after")
    def _check_tls_files(self) -> Self:
        for name in ("ca_file", "cert_file", "key_file"):
            if getattr(self, name) and not self.tls:
                raise ValueError(f"{name} is set but tls is false; set tls: true")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        return self


class SinkSettings(Section):
    """The sinks (`sentio sink <backend>`): batching, retries and each backend's endpoint."""

    batch_size: int = Field(
        default=5000, ge=1, le=1_000_000, description="Most records written in one batch."
    )
    batch_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="Longest a consumed record waits for its batch to fill before it is written.",
    )
    max_in_flight: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Batches being written at once; consumption pauses while this many wait.",
    )
    retry_backoff_initial_s: float = Field(
        default=0.5, gt=0, description="First wait after a failed write; doubles on every failure."
    )
    retry_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between two write attempts."
    )
    startup_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long start-up tries to reach the backend before giving up with an error.",
    )
    health_host: str = Field(
        default="127.0.0.1", description="Address of the sinks' /health and /metrics servers."
    )
    victoriametrics: VictoriaMetricsSinkSettings = Field(
        default_factory=VictoriaMetricsSinkSettings
    )
    loki: LokiSinkSettings = Field(default_factory=LokiSinkSettings)
    tempo: TempoSinkSettings = Field(default_factory=TempoSinkSettings)
    homeassistant: HomeAssistantSinkSettings = Field(default_factory=HomeAssistantSinkSettings)
    alertmanager: AlertmanagerSinkSettings = Field(default_factory=AlertmanagerSinkSettings)
    webhook: WebhookSinkSettings = Field(default_factory=WebhookSinkSettings)
