"""Credentials of an HTTP backend, shared by the sinks' settings."""

from __future__ import annotations

from pydantic import Field, SecretStr

from sentio_iot.settings import Section


class HttpAuth(Section):
    """Credentials for an HTTP backend: basic auth or a bearer token (never logged)."""

    basic_auth: SecretStr | None = Field(
        default=None, description="'user:password' sent as HTTP basic auth; none when empty."
    )
    bearer_token: SecretStr | None = Field(
        default=None, description="Token sent as 'Authorization: Bearer <token>'; none when empty."
    )
