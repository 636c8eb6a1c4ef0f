"""Settings: The live API (`sentio api`): address, tokens, login limits, views and WebSocket limits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from sentio_iot.settings import Section
from sentio_iot.settings.http_auth import HttpAuth


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/sentio-iot/api`` (else ``~/.local/state/sentio-iot/api``)."""
    state = Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state")))
    return state / "sentio-iot" / "api"


class TokenSettings(Section):
    """Signed JWTs (EdDSA, Ed25519): who issues them and how long they live."""

    issuer: str = Field("sentio-iot", description="The `iss` claim of the tokens it issues.")
    audience: str = Field("sentio-api", description="The `aud` claim it issues and requires.")
    access_ttl_s: int = Field(
        900, ge=30, le=86_400, description="Lifetime of an access token (s); short by design."
    )
    refresh_ttl_s: int = Field(
        7 * 86_400,
        ge=300,
        le=90 * 86_400,
        description="Lifetime of a refresh token (s); each use replaces it with a new one.",
    )
    leeway_s: int = Field(
        10, ge=0, le=300, description="Clock skew (s) allowed on `exp`, `nbf` and `iat`."
    )


class OidcSettings(Section):
    """Tokens from an external OpenID Connect issuer, verified by the keys at its JWKS URL."""

    issuer: str | None = Field(
        None, description="The issuer's `iss` value; null: no external tokens are accepted."
    )
    jwks_url: str | None = Field(
        None, description="Where the issuer publishes its signing keys.", pattern=r"^https?://"
    )
    audience: str | None = Field(
        None, description="The `aud` its tokens must carry; null: not checked."
    )
    algorithms: list[Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]] = (
        Field(["RS256", "ES256", "EdDSA"], min_length=1, description="Signing algorithms accepted.")
    )
    role_claim: str = Field("sentio_role", description="Claim holding viewer, operator or admin.")
    tenants_claim: str = Field(
        "sentio_tenants", description="Claim holding the tenants (a list, or comma-separated)."
    )
    default_role: Literal["viewer", "operator", "admin"] | None = Field(
        None, description="Role of a token without the role claim; null: such tokens are refused."
    )
    leeway_s: int = Field(10, ge=0, le=300, description="Clock skew (s) allowed.")

    @model_validator(mode="after")
    def _needs_jwks(self) -> OidcSettings:
        if self.issuer is not None and self.jwks_url is None:
            raise ValueError("jwks_url is required when issuer is set")
        return self


class LoginLimit(Section):
    """Login attempts allowed per user name and per client address (token bucket)."""

    attempts: int = Field(
        5, ge=1, le=1000, description="Attempts allowed in a burst before logins are refused."
    )
    per_s: float = Field(
        60.0, gt=0, le=86_400, description="Seconds for one attempt to be given back."
    )


class LiveSettings(Section):
    """The WebSocket `/api/v1/live`: per-connection limits and timing."""

    max_subscriptions: int = Field(
        32, ge=1, le=10_000, description="Subscriptions one connection may hold."
    )
    max_messages_per_s: float = Field(
        2000.0,
        gt=0,
        description="Messages sent per second per connection; beyond it the queue coalesces.",
    )
    queue_size: int = Field(
        1000,
        ge=16,
        le=1_000_000,
        description="Updates waiting for one client; when more would wait (a slow client) the waiting ones are dropped, the client is told how many and is sent the latest value per key (device, metric, alert) it missed, from the views.",
    )
    frame_interval_s: float = Field(
        0.05,
        ge=0,
        le=5,
        description="The longest updates wait to go out together in the next round of frames (s); 0: each batch from Kafka at once. See max_frames_per_s.",
    )
    max_frames_per_s: float = Field(
        20_000.0,
        gt=0,
        description="Frames per second to all live clients together that the API aims at: rounds of frames are (subscribed clients / this) s apart, at most frame_interval_s, so one client gets each batch at once and a thousand get fewer, larger frames.",
    )
    stall_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A client that takes no frame for this long is closed with code 4429 (s).",
    )
    compression: bool = Field(
        False,
        description="permessage-deflate for clients that ask for it: fewer bytes on a slow link, but every frame is compressed again for every client, which costs more CPU than encoding it.",
    )
    heartbeat_s: float = Field(
        15.0, gt=0, le=300, description="A heartbeat is sent after this long without messages."
    )
    auth_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Time a new connection has to send its token."
    )


class ViewSettings(Section):
    """The in-memory views, rebuilt from the derived topics at every start."""

    readings_lookback_s: float = Field(
        900.0, ge=0, description="Readings read back at start for the latest values (s)."
    )
    events_lookback_s: float = Field(
        7 * 86_400.0,
        ge=0,
        description="Device events, RUL and alert commands (the alerts' history) read back at start (s).",
    )
    anomalies_lookback_s: float = Field(
        86_400.0, ge=0, description="Anomalies read back at start (s)."
    )
    anomalies_kept: int = Field(
        10_000, ge=10, le=1_000_000, description="Recent anomalies kept in memory (a ring)."
    )


class HistorySettings(Section):
    """Series from VictoriaMetrics: raw samples or the 1 min / 1 h rollups by range and step."""

    url: str | None = Field(
        None,
        description="VictoriaMetrics base URL for queries; null: sinks.victoriametrics.url.",
        pattern=r"^https?://",
    )
    logs_url: str | None = Field(
        None,
        description="VictoriaLogs base URL for device events; null: the local stack's (stack.victorialogs_port).",
        pattern=r"^https?://",
    )
    auth: HttpAuth = Field(
        default_factory=HttpAuth,
        description="Credentials of `url`; none set and `url` null: sinks.victoriametrics.auth.",
    )
    logs_auth: HttpAuth = Field(
        default_factory=HttpAuth,
        description="Credentials of `logs_url` (`sentio stack up --secure` writes them).",
    )
    raw_max_range_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="Ranges up to this long with a step under 60 s read raw samples.",
    )
    hourly_min_step_s: float = Field(
        3600.0, gt=0, description="Steps of at least this long read the 1 h rollups."
    )
    max_points: int = Field(
        11_000, ge=10, le=100_000, description="Most points one series request may return."
    )
    timeout_s: float = Field(10.0, gt=0, description="HTTP timeout of one query.")


class ApiTlsSettings(Section):
    """HTTPS and WSS on the API's port: its certificate and key (PEM); both unset: plain HTTP.

    With them set the port speaks TLS only: a plain HTTP request there gets no answer.
    """

    cert_file: Path | None = Field(
        None,
        description="Certificate (PEM) the API presents, followed by any intermediate CA certificates; needs key_file. Null: plain HTTP.",
    )
    key_file: Path | None = Field(None, description="Private key (PEM) of cert_file.")
    key_password: SecretStr | None = Field(
        None, description="Password of an encrypted key_file (never logged)."
    )

    @model_validator(mode="after")
    def _both_files(self) -> ApiTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(f"{missing} is required: TLS needs both cert_file and key_file")
        if self.key_password is not None and self.key_file is None:
            raise ValueError("key_password is set but key_file is not")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class ApiSettings(Section):
    """`sentio api`: REST and WebSocket access to the pipeline, behind JWT authentication."""

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    tls: ApiTlsSettings = Field(
        default_factory=lambda: ApiTlsSettings.model_validate({}),
        description="HTTPS/WSS: certificate and key files; unset: plain HTTP.",
    )
    state_dir: Path | None = Field(
        None,
        description="Folder of the users store, refresh tokens, API keys and signing keys (mode 0700). None: $XDG_STATE_HOME/sentio-iot/api (else ~/.local/state/sentio-iot/api).",
    )
    tokens: TokenSettings = Field(default_factory=lambda: TokenSettings.model_validate({}))
    login_limit: LoginLimit = Field(default_factory=lambda: LoginLimit.model_validate({}))
    oidc: OidcSettings = Field(default_factory=lambda: OidcSettings.model_validate({}))
    live: LiveSettings = Field(default_factory=lambda: LiveSettings.model_validate({}))
    views: ViewSettings = Field(default_factory=lambda: ViewSettings.model_validate({}))
    history: HistorySettings = Field(default_factory=lambda: HistorySettings.model_validate({}))
    page_size_max: int = Field(
        1000, ge=10, le=100_000, description="Largest `limit` a list request may ask for."
    )

    def resolved_state_dir(self) -> Path:
        return self.state_dir or default_state_dir()

    def base_url(self) -> str:
        """How a client on this machine reaches the API: ``https://`` with TLS, a wildcard
        host as 127.0.0.1."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{'https' if self.tls.enabled else 'http'}://{host}:{self.port}"
