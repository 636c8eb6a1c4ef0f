"""Everything one API process holds, built once by ``app.create_app`` and shared by routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from sentio_iot.api.api_keys import ApiKeys
from sentio_iot.api.commands import AlertCommands
from sentio_iot.api.hub import LiveHub
from sentio_iot.api.keys import KeyRing
from sentio_iot.api.oidc import OidcVerifier
from sentio_iot.api.ratelimit import LoginRateLimiter
from sentio_iot.api.refresh import RefreshTokens
from sentio_iot.api.silence_relay import SilenceRelay
from sentio_iot.api.store import AuthStore
from sentio_iot.api.tokens import AccessTokens
from sentio_iot.api.users import UserStore
from sentio_iot.api.views import Views
from sentio_iot.config import SentioConfig
from sentio_iot.pipeline.probes import Poller
from sentio_iot.sinks.http_endpoint import auth_headers


@dataclass
class Services:
    config: SentioConfig
    store: AuthStore
    users: UserStore
    keys: KeyRing
    access: AccessTokens
    refresh: RefreshTokens
    api_keys: ApiKeys
    limiter: LoginRateLimiter
    views: Views
    hub: LiveHub
    commands: AlertCommands
    oidc: OidcVerifier | None = None
    http: httpx.AsyncClient | None = None
    health: Poller[object] | None = None
    feed_ready: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    feed_records: int = 0
    silence_relay: SilenceRelay | None = None  # set by the lifespan when it relays

    @classmethod
    def build(cls, config: SentioConfig) -> Services:
        settings = config.api
        store = AuthStore(settings.resolved_state_dir())
        keys = KeyRing(store.state_dir)
        keys.ensure()
        return cls(
            config=config,
            store=store,
            users=UserStore(store),
            keys=keys,
            access=AccessTokens(keys, settings.tokens),
            refresh=RefreshTokens(store, settings.tokens.refresh_ttl_s),
            api_keys=ApiKeys(store),
            limiter=LoginRateLimiter(settings.login_limit),
            views=Views(config.tenant, config.site, settings.views.anomalies_kept),
            hub=LiveHub(settings.live.frame_interval_s, settings.live.max_frames_per_s),
            commands=AlertCommands(config),
            oidc=OidcVerifier(settings.oidc) if settings.oidc.issuer else None,
        )

    @property
    def logs_url(self) -> str:
        stack = self.config.stack
        return self.config.api.history.logs_url or f"http://127.0.0.1:{stack.victorialogs_port}"

    @property
    def history_url(self) -> str:
        return self.config.api.history.url or self.config.sinks.victoriametrics.url

    @property
    def history_headers(self) -> dict[str, str]:
        """The auth of the history reads: api.history.auth, else (same backend, ``url``
        null) the VictoriaMetrics sink's."""
        history = self.config.api.history
        own = auth_headers(history.auth)
        if own or history.url is not None:
            return own
        return auth_headers(self.config.sinks.victoriametrics.auth)

    @property
    def logs_headers(self) -> dict[str, str]:
        return auth_headers(self.config.api.history.logs_auth)
