"""An HTTP backend as the writers see it: one client, auth headers, errors sorted by what helps.

- connection errors, timeouts, 429 and 5xx → :class:`BackendUnavailable` (retry later;
  ``Retry-After`` honoured);
- 401/403 → at start-up a ConfigError naming the auth field, later BackendUnavailable
  (credentials may be rotated back);
- other 4xx → returned to the writer, which knows what the backend refused.

``probe()`` is what a writer's ``start()`` calls: it retries an unreachable endpoint for
``startup_timeout_s``, then raises ConfigError naming the URL field, so a typo in the
configuration stops the sink at once instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import base64
import time

import httpx

from sentio_iot.errors import ConfigError
from sentio_iot.secret_values import secret_value
from sentio_iot.settings.sinks import HttpAuth
from sentio_iot.sinks.writer import BackendUnavailable

PROBE_RETRY_S = 0.5


def auth_headers(auth: HttpAuth) -> dict[str, str]:
    bearer = secret_value(auth.bearer_token)
    basic = secret_value(auth.basic_auth)
    if bearer:
        return {"Authorization": f"Bearer {bearer}"}
    if basic:
        token = base64.b64encode(basic.encode()).decode()
        return {"Authorization": f"Basic {token}"}
    return {}


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return float(value)
    except ValueError:
        return None


class HttpEndpoint:
    """One backend endpoint; ``field`` is its settings path, e.g. ``sinks.victoriametrics``."""

    def __init__(
        self,
        field: str,
        *,
        auth: HttpAuth,
        timeout_s: float,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.field = field
        self.client = httpx.AsyncClient(
            timeout=timeout_s,
            headers={**auth_headers(auth), **(headers or {})},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    async def post(self, url: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST; BackendUnavailable when retrying later may help, else the response (2xx, 4xx)."""
        try:
            response = await self.client.post(url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        code = response.status_code
        if code == 429 or code >= 500:
            raise BackendUnavailable(
                f"{url} answered {code}: {response.text[:300]}",
                retry_after_s=retry_after(response),
            )
        if code in (401, 403):
            raise BackendUnavailable(f"{url} answered {code}: credentials refused")
        return response

    async def probe(
        self, url: str, content: bytes, headers: dict[str, str], startup_timeout_s: float
    ) -> None:
        """POST a harmless body (an empty write); ConfigError for a wrong URL or credentials."""
        deadline = time.monotonic() + startup_timeout_s
        while True:
            try:
                response = await self.client.post(url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                if time.monotonic() >= deadline:
                    raise ConfigError(
                        f"{self.field}.url: cannot reach {url} ({type(exc).__name__}: {exc}); "
                        "check the host and port, and that the backend runs"
                    ) from exc
                await asyncio.sleep(PROBE_RETRY_S)
                continue
            break
        code = response.status_code
        if code in (401, 403):
            raise ConfigError(
                f"{self.field}.auth: {url} answered {code} ({response.text[:200].strip()}); "
                "check basic_auth / bearer_token"
            )
        if code == 404 or code == 405:
            raise ConfigError(
                f"{self.field}.url: {url} answered {code}: not a write endpoint of this backend; "
                "check the URL"
            )
        if code >= 400 and code != 429 and code < 500:
            raise ConfigError(
                f"{self.field}.url: {url} refused an empty write with {code}: {response.text[:200].strip()}"
            )

    async def close(self) -> None:
        await self.client.aclose()
