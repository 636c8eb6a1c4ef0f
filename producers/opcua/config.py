"""OPC-UA server configuration: where, how securely, and which nodes become which metrics."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sentio_iot.producers.opcua.addresses import parse_browse_path, parse_node_id


class SecurityMode(StrEnum):
    """OPC-UA message security: none, signed, or signed and encrypted."""

    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class SecurityPolicy(StrEnum):
    BASIC256SHA256 = "Basic256Sha256"


class NodeConfig(BaseModel):
    """One subscribed variable: where it is on the server and what metric it becomes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str | None = Field(
        None,
        description="Node id: ns=2;i=1001, ns=2;s=Pump1.Speed, ns=2;g=<guid>, ns=2;b=<base64>, or nsu=<namespace uri>;s=... (give node_id or browse_path).",
    )
    browse_path: str | None = Field(
        None,
        description="Browse path from the Root folder: 0:Objects/2:Plant/2:Pump1/2:Speed (namespace index:browse name per step).",
    )
    metric: str = Field(..., min_length=1, description="Metric name, e.g. 'speed'.")
    device_id: str | None = Field(
        None,
        min_length=1,
        description="Device id of its readings; default: the server's device_id.",
    )
    unit: str | None = Field(None, description="Unit of the value, e.g. 'rpm' or 'degC'.")
    sampling_interval_ms: float | None = Field(
        None,
        ge=-1,
        description="How often the server samples it, in ms (0: as fast as it can, -1: the publishing interval); default: the server's sampling_interval_ms.",
    )
    deadband_absolute: float | None = Field(
        None,
        gt=0,
        description="Report a numeric value only when it moved more than this from the last one sampled (DataChangeFilter, absolute).",
    )
    deadband_percent: float | None = Field(
        None,
        gt=0,
        le=100,
        description="Report a numeric value only when it moved more than this percentage of its EURange (DataChangeFilter, percent; the node must be an AnalogItem).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to this node's readings."
    )

    @field_validator("node_id")
    @classmethod
    def _check_node_id(cls, value: str | None) -> str | None:
        if value is not None:
            parse_node_id(value)
        return value

    @field_validator("browse_path")
    @classmethod
    def _check_browse_path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_browse_path(value)
        return value

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError(
                f"node for metric '{self.metric}' needs exactly one of node_id or browse_path"
            )
        if self.deadband_absolute is not None and self.deadband_percent is not None:
            raise ValueError(
                f"node for metric '{self.metric}': choose deadband_absolute or deadband_percent, not both"
            )
        return self

    @property
    def address(self) -> str:
        """How the node is named in the configuration (for logs and events)."""
        return self.node_id or self.browse_path or ""


class OpcUaServerConfig(BaseModel):
    """One OPC-UA server and the variables subscribed on it.

    Each node becomes one metric; every data change the server reports becomes a reading
    timestamped with the value's source timestamp (else the server's, else now), with its
    status code mapped to the quality: Good -> GOOD, Uncertain* -> UNCERTAIN, Bad* -> BAD.
    A node whose status changes gets a device event naming the status (e.g. BadSensorFailure).
    The session is probed every `watchdog_interval_s`; when it is lost the connector reconnects
    with exponential backoff and subscribes again, emitting DISCONNECTED/CONNECTED events.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(
        ...,
        min_length=1,
        description="Device id of the server's CONNECTED/DISCONNECTED events, and of nodes without their own.",
    )
    url: str = Field(
        ..., description="Endpoint URL, e.g. opc.tcp://plc1.local:4840/freeopcua/server/."
    )
    security_mode: SecurityMode = Field(
        SecurityMode.NONE,
        description="Message security: None, Sign or SignAndEncrypt (the last two need certificate_path and private_key_path).",
    )
    security_policy: SecurityPolicy = Field(
        SecurityPolicy.BASIC256SHA256, description="Security policy when security_mode is not None."
    )
    certificate_path: Path | None = Field(
        None,
        validate_default=True,
        description="Client application certificate (DER or PEM); its URI (subjectAltName) becomes the application URI.",
    )
    private_key_path: Path | None = Field(
        None,
        validate_default=True,
        description="Private key of the client certificate (PEM or DER).",
    )
    private_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted private key; never logged."
    )
    server_certificate_path: Path | None = Field(
        None,
        description="Trusted server certificate (DER or PEM): connect to a server presenting exactly it.",
    )
    trusted_ca_path: Path | None = Field(
        None,
        description="CA certificates (a PEM file holding one or more, a DER file, or a folder of them) trusted to issue server certificates: connect to a server whose certificate one of them issued (directly or through the chain the server sends), and that is within its validity dates.",
    )
    verify_server_certificate: bool = Field(
        True,
        description="With Sign or SignAndEncrypt, refuse a server whose certificate is neither server_certificate_path nor issued by trusted_ca_path. false trusts whatever certificate the server offers (anyone between client and server can then pose as it).",
    )
    application_uri: str | None = Field(
        None,
        description="Client application URI; default: the URI in the client certificate, else urn:sentio-iot:opcua-client.",
    )
    username: str | None = Field(None, min_length=1, description="User name to log in with.")
    password: SecretStr | None = Field(None, description="Password of username; never logged.")
    password_env: str | None = Field(
        None,
        min_length=1,
        description="Name of an environment variable holding the password, instead of password.",
    )
    publishing_interval_ms: float = Field(
        1000.0, gt=0, description="How often the server sends the changes it collected, in ms."
    )
    sampling_interval_ms: float = Field(
        500.0,
        ge=-1,
        description="How often the server samples each node, in ms (0: as fast as it can, -1: the publishing interval).",
    )
    queue_size: int = Field(
        10,
        ge=1,
        description="Samples the server keeps per node between two publishes (1: only the newest).",
    )
    request_timeout_s: float = Field(5.0, gt=0, description="Seconds to wait for each answer.")
    session_timeout_s: float = Field(
        60.0, gt=0, description="Seconds the server keeps the session after the client went silent."
    )
    watchdog_interval_s: float = Field(
        2.0,
        gt=0,
        description="Seconds between probes of the server state; a failed probe ends the session and reconnects.",
    )
    reconnect_initial_s: float = Field(
        1.0, gt=0, description="First wait before reconnecting; doubles while it keeps failing."
    )
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest wait between reconnects.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every reading."
    )
    nodes: list[NodeConfig] = Field(..., min_length=1, description="The subscribed variables.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        rest = value.removeprefix("opc.tcp://")
        if rest == value or not rest.split("/", 1)[0]:
            raise ValueError(f"{value!r} is not an OPC-UA endpoint; use opc.tcp://host:port[/path]")
        return value

    @field_validator("certificate_path", "private_key_path")
    @classmethod
    def _needed_for_security(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        mode = info.data.get("security_mode")
        if value is None and mode not in (None, SecurityMode.NONE):
            raise ValueError(
                f"security_mode {mode} needs {info.field_name}; set both certificate_path and private_key_path, or security_mode None"
            )
        return value

    @model_validator(mode="after")
    def _check_server_trust(self) -> Self:
        secured = self.security_mode is not SecurityMode.NONE
        anchored = self.server_certificate_path is not None or self.trusted_ca_path is not None
        if secured and self.verify_server_certificate and not anchored:
            raise ValueError(
                f"security_mode {self.security_mode} verifies the server's certificate: set "
                "trusted_ca_path (the CA that issued it) or server_certificate_path (the "
                "server's own certificate), or verify_server_certificate: false to trust any"
            )
        return self

    @model_validator(mode="after")
    def _check_login_and_names(self) -> Self:
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        if (self.password is not None or self.password_env is not None) and not self.username:
            raise ValueError("a password needs a username")
        seen: set[tuple[str, str]] = set()
        for node in self.nodes:
            key = (node.device_id or self.device_id, node.metric)
            if key in seen:
                raise ValueError(
                    f"metric '{node.metric}' of device '{key[0]}' is configured twice; each node needs its own metric name"
                )
            seen.add(key)
        return self

    def device_of(self, node: NodeConfig) -> str:
        return node.device_id or self.device_id
