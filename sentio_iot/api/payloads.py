"""The API's JSON bodies. Records keep the Avro contract's field names (schemas/avro/);
times are integer microseconds since the Unix epoch, UTC, as in the contract. The web
dashboard is built on these names: change them only by adding fields."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

T = TypeVar("T")


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Problem(Body):
    error: str = Field(description="Why the request was refused or failed, one line.")


class Page(Body, Generic[T]):
    items: list[T]
    total: int = Field(description="Items matching the filters, before limit and offset.")
    limit: int
    offset: int


class LastValue(Body):
    value: float | None
    text: str | None = None
    unit: str | None = None
    quality: str = "GOOD"
    ts: int = Field(description="Timestamp of the reading, µs since the epoch.")


class Alert(Body):
    alert_id: str
    device_id: str
    type: str
    severity: str
    status: str
    start_ts: int
    end_ts: int | None = None
    ack_ts: int | None = None
    count: int = 1
    message: str = ""
    details: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Anomaly(Body):
    device_id: str
    metric: str
    ts: int
    value: float
    score: float
    threshold: float
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    detector: str
    detector_version: str
    labels: dict[str, str] = Field(default_factory=dict)


class RulPrediction(Body):
    device_id: str
    ts: int
    rul: float
    rul_unit: str = "cycles"
    lower: float | None = None
    upper: float | None = None
    model_name: str
    model_version: str
    window_size: int
    labels: dict[str, str] = Field(default_factory=dict)


class DeviceEvent(Body):
    device_id: str
    ts: int
    kind: str
    message: str = ""
    source: str
    details: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Device(Body):
    device_id: str
    tenant: str
    site: str
    type: str | None = Field(description="The device's `type` label, else its `kind` label.")
    status: Literal["ONLINE", "OFFLINE", "UNKNOWN"]
    labels: dict[str, str]
    last_seen_ts: int | None
    last_values: dict[str, LastValue]
    rul: RulPrediction | None
    open_alerts: int


class DeviceDetail(Device):
    alerts: list[Alert] = Field(description="The device's open alerts.")
    last_event: DeviceEvent | None


class Point(Body):
    ts: int
    value: float


class Series(Body):
    device_id: str
    metric: str
    source: Literal["raw", "raw_averaged", "rollup_1m", "rollup_1h"] = Field(
        description="raw samples; raw_averaged: the mean of the raw samples in each step (series without rollups, e.g. rul, beyond the raw range); or the mean of the 1 min or 1 h rollups."
    )
    query: str = Field(description="The MetricsQL query sent to VictoriaMetrics.")
    start_ts: int
    end_ts: int
    step_s: float
    unit: str | None = Field(
        None, description="The series' unit label where it has one (RUL: cycles or hours)."
    )
    points: list[Point]


class Login(Body):
    username: str = Field(min_length=1, max_length=64)
    password: SecretStr = Field(min_length=1, max_length=1024)


class RefreshRequest(Body):
    refresh_token: SecretStr = Field(min_length=1, max_length=512)


class Tokens(Body):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Single use: each refresh returns a new one.")


class Me(Body):
    name: str
    role: str
    tenants: list[str]
    kind: Literal["user", "api_key"]


class AlertAction(Body):
    alert_id: str | None = Field(None, description="Only this occurrence; null: the open one.")
    comment: str = Field("", max_length=1000, description="A note for the other operators.")


class AlertCommand(Body):
    command_id: str
    device_id: str
    type: str
    action: Literal["ACK", "CLEAR"]
    alert_id: str | None
    ts: int
    user: str
    comment: str


class AlertHistoryEntry(Body):
    ts: int = Field(description="When: microseconds since the Unix epoch, UTC.")
    event: Literal["FIRING", "ACK", "CLEAR", "RESOLVED"] = Field(
        description="FIRING: the occurrence started; ACK, CLEAR: an operator's command (an Alertmanager silence is an ACK by its author); RESOLVED: the occurrence ended (by a CLEAR when the alert says cleared_by)."
    )
    user: str = Field(default="", description="Who; empty for what the pipeline did by itself.")
    comment: str = ""
    alert_id: str | None = Field(
        default=None, description="The occurrence; null: a command for whichever was open."
    )
    command_id: str | None = None


class AlertHistory(Body):
    alert: Alert
    entries: list[AlertHistoryEntry] = Field(
        description="Oldest first: the commands the views hold for this device and type (api.views.events_lookback_s, at most 200) and the start and end of each occurrence they hold (the latest, and up to 20 earlier ones seen since the API started or left by the alerts topic's compaction)."
    )


class WorkerHealth(Body):
    name: str
    healthy: bool
    rate_per_s: float | None = Field(description="Records per second through the worker.")


class PipelineHealth(Body):
    views_ready: bool = Field(description="The views have read the topics up to their start.")
    view_records: int
    workers: list[WorkerHealth]
    lag: dict[str, int] = Field(description="Consumer lag (messages) per consumer group.")


class User(Body):
    name: str
    role: Literal["viewer", "operator", "admin"]
    tenants: list[str]
    created_ts: int = Field(description="Seconds since the epoch.")


class NewUser(Body):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "operator", "admin"] = "viewer"
    tenants: list[str] = Field(min_length=1)
    password: SecretStr | None = Field(None, description="null: a random one is returned once.")


class CreatedUser(Body):
    user: User
    password: str | None = Field(description="The generated password, shown only here.")


class ApiKey(Body):
    key_id: str
    name: str
    role: Literal["viewer", "operator", "admin"]
    tenants: list[str]
    created_by: str
    created_ts: int
    revoked_ts: int | None


class NewApiKey(Body):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "operator", "admin"] = "viewer"
    tenants: list[str] = Field(min_length=1)


class CreatedApiKey(Body):
    key: ApiKey
    secret: str = Field(description="Send as 'Authorization: Bearer <secret>'; shown only here.")


class ModelVersion(Body):
    name: str
    version: int
    current: bool = Field(description="The version the stream serves.")
    shipped: bool = Field(description="Shipped with the package (else trained by a user).")
    rul_unit: str | None
    rmse: float | None = Field(description="Validation RMSE recorded at training, in rul_unit.")
    created: str | None


class LoggedEvent(Body):
    device_id: str
    ts: int = Field(description="When it was logged, µs since the epoch.")
    kind: str = Field(description="The DeviceEvent kind (ONLINE, OFFLINE, ERROR, ...).")
    level: str
    message: str
