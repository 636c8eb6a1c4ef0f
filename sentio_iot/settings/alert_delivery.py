"""Settings: alert delivery, `sentio sink alertmanager` and `sentio sink webhook`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from sentio_iot.settings import Section
from sentio_iot.settings.http_auth import HttpAuth

AlertStatus = Literal["FIRING", "ACKNOWLEDGED", "RESOLVED"]


def every_status() -> list[AlertStatus]:
    return ["FIRING", "ACKNOWLEDGED", "RESOLVED"]


class AlertmanagerSinkSettings(Section):
    """`sentio sink alertmanager`: alerts to Prometheus Alertmanager's v2 API, acks as silences."""

    url: str = Field(
        default="http://127.0.0.1:9095",
        description="Base URL of Alertmanager (the local stack's listens on 127.0.0.1:9095).",
        pattern=r"^https?://",
    )
    auth: HttpAuth = Field(default_factory=HttpAuth)
    timeout_s: float = Field(default=10.0, gt=0, description="HTTP timeout of one request.")
    resend_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Firing alerts are sent again this often, as Alertmanager expects of a client.",
    )
    firing_ttl_s: float = Field(
        default=180.0,
        gt=0,
        description="endsAt of a firing alert lies this far past its last send: if the sink stops sending, Alertmanager resolves it then. At least 2 x resend_interval_s.",
    )
    silence_days: float = Field(
        default=30.0,
        gt=0,
        le=3650,
        description="Length of the silence an acknowledgement creates; it is expired earlier when the alert resolves or is cleared.",
    )
    import_silences: bool = Field(
        default=True,
        description="A silence made in Alertmanager over a firing Sentio alert acknowledges it in Sentio (an ACK on alert-commands, by the silence's author). The API (`sentio api`, the only worker that may write alert-commands) relays it: it looks every resend_interval_s, with this section's url and auth.",
    )
    grafana_url: str = Field(
        default="http://127.0.0.1:3000",
        description="Grafana's base URL; each alert links to its device's dashboard there (uid sentio-device). Empty: no link.",
        pattern=r"^(https?://.*)?$",
    )
    dashboard_url: str = Field(
        default="",
        description="Link to the device in Sentio's dashboard, with {device_id}, {type}, {tenant}, {site} replaced. Empty: no link.",
    )
    runbook_url: str = Field(
        default="",
        description="Runbook link put on every alert (annotation runbook_url), with {type}, {device_id} replaced; e.g. https://wiki/runbooks/{type}. Empty: none.",
    )
    health_port: int = Field(
        default=9475,
        ge=0,
        le=65535,
        description="Port of this sink's /health and /metrics; 0: none.",
    )

    @model_validator(mode="after")
    def _ttl_outlives_resends(self) -> AlertmanagerSinkSettings:
        if self.firing_ttl_s < 2 * self.resend_interval_s:
            raise ValueError(
                f"firing_ttl_s ({self.firing_ttl_s:g}) must be at least 2 x resend_interval_s "
                f"({self.resend_interval_s:g}), or Alertmanager resolves firing alerts between sends"
            )
        return self


class WebhookEndpoint(Section):
    """One URL that receives alert state changes, signed with its own secret."""

    url: str = Field(description="Where each state change is POSTed.", pattern=r"^https?://")
    secret: SecretStr = Field(
        description="HMAC-SHA256 key of the X-Sentio-Signature header (at least 16 characters; never logged).",
        min_length=16,
    )
    statuses: list[AlertStatus] = Field(
        default_factory=every_status,
        description="Which alert statuses this URL receives.",
        min_length=1,
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra HTTP headers sent with every request."
    )


class WebhookSinkSettings(Section):
    """`sentio sink webhook`: alert state changes as signed JSON POSTs to configured URLs."""

    endpoints: list[WebhookEndpoint] = Field(
        default_factory=list,
        description="The receiving URLs, each with its secret; the sink refuses to start without one.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="HTTP timeout of one request.")
    health_port: int = Field(
        default=9476,
        ge=0,
        le=65535,
        description="Port of this sink's /health and /metrics; 0: none.",
    )
