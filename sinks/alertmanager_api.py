"""The parts of Alertmanager's v2 API the sink uses: alerts in, silences made and expired.

Errors as the sink runtime sorts them (through :class:`HttpEndpoint`): unreachable, 5xx,
429, 401/403 are :class:`BackendUnavailable`; a 400 on ``POST /api/v2/alerts`` is returned
so the writer can find the refused alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from sentio_iot.pipeline.metrics_text import by_label, parse_metrics
from sentio_iot.settings.alert_delivery import AlertmanagerSinkSettings
from sentio_iot.sinks.http_endpoint import HttpEndpoint, retry_after
from sentio_iot.sinks.writer import BackendUnavailable

log = logging.getLogger(__name__)

FIELD = "sinks.alertmanager"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Silence:
    """An active silence as Alertmanager lists it."""

    id: str
    matchers: dict[str, str]  # name -> value of its equality matchers
    created_by: str
    comment: str


class AlertmanagerApi:
    """One Alertmanager, at ``settings.url``."""

    def __init__(self, settings: AlertmanagerSinkSettings, startup_timeout_s: float) -> None:
        self.base = settings.url.rstrip("/")
        self.startup_timeout_s = startup_timeout_s
        self.endpoint = HttpEndpoint(FIELD, auth=settings.auth, timeout_s=settings.timeout_s)

    async def probe(self) -> None:
        """ConfigError when no Alertmanager answers at the URL (an empty list of alerts)."""
        await self.endpoint.probe(self.base + "/api/v2/alerts", b"[]", JSON, self.startup_timeout_s)

    async def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> httpx.Response:
        """POST the alerts: the response when it is 2xx or 4xx (a 400 names what is wrong)."""
        body = orjson.dumps(list(alerts))
        return await self.endpoint.post(self.base + "/api/v2/alerts", body, JSON)

    async def create_silence(self, silence: Mapping[str, Any]) -> str:
        response = await self.endpoint.post(
            self.base + "/api/v2/silences", orjson.dumps(silence), JSON
        )
        self._check(response, "POST /api/v2/silences")
        return str(response.json()["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        """Expire a silence; one that is already gone or expired counts as done."""
        response = await self._request("DELETE", f"/api/v2/silence/{silence_id}")
        if response.status_code not in (200, 404) and response.status_code < 500:
            log.warning(
                "silence %s not expired: Alertmanager answered %d: %s",
                silence_id,
                response.status_code,
                response.text[:200],
            )

    async def active_silences(self, pipeline: str) -> list[Silence]:
        """The active silences with a ``sentio=<pipeline>`` matcher."""
        response = await self._request(
            "GET", "/api/v2/silences", params={"filter": f'sentio="{pipeline}"'}
        )
        self._check(response, "GET /api/v2/silences")
        return [
            Silence(
                id=str(item["id"]),
                matchers={
                    str(m["name"]): str(m["value"])
                    for m in item.get("matchers", [])
                    if not m.get("isRegex") and m.get("isEqual", True)
                },
                created_by=str(item.get("createdBy", "")),
                comment=str(item.get("comment", "")),
            )
            for item in response.json()
            if item.get("status", {}).get("state") == "active"
        ]

    async def silences_by_id(self) -> dict[str, Mapping[str, Any]]:
        response = await self._request("GET", "/api/v2/silences")
        self._check(response, "GET /api/v2/silences")
        return {str(item["id"]): item for item in response.json()}

    async def alerts(self, pipeline: str) -> list[Mapping[str, Any]]:
        """The alerts of this pipeline Alertmanager holds now (active, silenced or inhibited)."""
        response = await self._request(
            "GET", "/api/v2/alerts", params={"filter": f'sentio="{pipeline}"'}
        )
        self._check(response, "GET /api/v2/alerts")
        found: list[Mapping[str, Any]] = response.json()
        return found

    async def notifications(self) -> dict[tuple[str, ...], float]:
        """Alertmanager's own counters, ``(outcome, integration) -> count``: outcome ``sent``
        (``alertmanager_notifications_total`` less the failed) or ``failed``. They count
        every notification this Alertmanager sent, whichever pipeline's alerts."""
        response = await self._request("GET", "/metrics")
        self._check(response, "GET /metrics")
        samples = parse_metrics(response.text)
        total = by_label(samples, "alertmanager_notifications_total", "integration")
        failed = by_label(samples, "alertmanager_notifications_failed_total", "integration")
        counts: dict[tuple[str, ...], float] = {("failed", n): v for n, v in failed.items()}
        for name, value in total.items():
            counts[("sent", name)] = value - failed.get(name, 0.0)
        return {key: value for key, value in counts.items() if value}  # integrations in use

    async def close(self) -> None:
        await self.endpoint.close()

    async def _request(
        self, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        url = self.base + path
        try:
            response = await self.endpoint.client.request(method, url, params=params)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise BackendUnavailable(
                f"{url} answered {response.status_code}: {response.text[:300]}",
                retry_after_s=retry_after(response),
            )
        return response

    @staticmethod
    def _check(response: httpx.Response, what: str) -> None:
        if response.status_code >= 300:
            # Our own request was wrong (a bug, or an Alertmanager of another API version).
            raise BackendUnavailable(
                f"{what}: Alertmanager answered {response.status_code}: {response.text[:300]}"
            )
