"""Webhook writer: every alert state change as a signed JSON POST to each configured URL.

The body is :mod:`sentio_iot.sinks.webhook_payload`'s, signed per URL as
:mod:`sentio_iot.sinks.webhook_signature` describes. Delivery, per URL:

- 2xx: delivered. Each (URL, key ``device_id/type``) is a chain sent in topic order, so a
  receiver sees FIRING before the RESOLVED of the same alert; batches are written one at a
  time for the same reason.
- unreachable, timeout, 401/403, 429, 5xx: the batch is retried with backoff by the sink
  runtime; what a URL already took is not sent to it again (``X-Sentio-Delivery`` lets a
  receiver drop the rare repeat after a crash).
- any other answer (a 4xx): refused for good; the record goes to the dead-letter topic with
  the URL's answer once every URL has had its try.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sentio_iot import __version__
from sentio_iot.config import SentioConfig
from sentio_iot.errors import ConfigError
from sentio_iot.plugins import SinkPlugin
from sentio_iot.settings.alert_delivery import WebhookEndpoint
from sentio_iot.settings.http_auth import HttpAuth
from sentio_iot.sinks.alert_fields import Defaults
from sentio_iot.sinks.http_endpoint import HttpEndpoint
from sentio_iot.sinks.webhook_payload import alert_event, body
from sentio_iot.sinks.webhook_signature import signed_headers
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, SinkRecord, Writer

log = logging.getLogger(__name__)

FIELD = "sinks.webhook"
DELIVERY_HEADER = "X-Sentio-Delivery"
EVENT_HEADER = "X-Sentio-Event"


class WebhookWriter(Writer):
    """POSTs alert state changes to the URLs of ``sinks.webhook.endpoints``."""

    topics = ("alerts",)

    def __init__(self, config: SentioConfig) -> None:
        self.settings = config.sinks.webhook
        self.defaults = Defaults(tenant=config.tenant, site=config.site)
        self.endpoint = HttpEndpoint(FIELD, auth=HttpAuth(), timeout_s=self.settings.timeout_s)
        self._one_batch = asyncio.Lock()
        self._done: set[tuple[str, str]] = set()  # (url, delivery id) taken or refused
        self._refused: dict[str, str] = {}  # delivery id -> the first refusal's answer

    async def start(self) -> None:
        if not self.settings.endpoints:
            raise ConfigError(
                f"{FIELD}.endpoints: no URL to send alerts to; add one: "
                "endpoints: [{url: https://..., secret: <at least 16 characters>}]"
            )
        log.info("posting alert state changes to %s", ", ".join(map(shown, self._urls())))

    async def write(self, batch: Sequence[SinkRecord]) -> None:
        async with self._one_batch:
            await self._write(batch)

    async def close(self) -> None:
        await self.endpoint.close()

    async def _write(self, batch: Sequence[SinkRecord]) -> None:
        reasons: dict[int, str] = {}
        events: dict[int, dict[str, Any]] = {}
        chains: dict[str, list[int]] = {}
        for index, record in enumerate(batch):
            try:
                events[index] = alert_event(record, self.defaults)
            except (KeyError, TypeError, ValueError) as exc:
                reasons[index] = f"record does not fit the alerts contract: {exc!r}"
                continue
            chains.setdefault(events[index]["alert"]["key"], []).append(index)
        sends = [
            self._send_chain(endpoint, chain, events)
            for endpoint in self.settings.endpoints
            for chain in chains.values()
        ]
        results = await asyncio.gather(*sends, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            unavailable = [r for r in failed if isinstance(r, BackendUnavailable)]
            if len(unavailable) < len(failed):
                raise next(r for r in failed if not isinstance(r, BackendUnavailable))
            raise BackendUnavailable(
                f"{len(unavailable)} webhook chain(s) not delivered; first: {unavailable[0]}",
                retry_after_s=unavailable[0].retry_after_s,
            )
        for index, event in events.items():  # the batch is over: forget what it delivered
            delivery = event["delivery_id"]
            self._done.difference_update({(url, delivery) for url in self._urls()})
            reason = self._refused.pop(delivery, None)
            if reason is not None:
                reasons[index] = reason
        if reasons:
            raise RejectedRecords(reasons)

    async def _send_chain(
        self, endpoint: WebhookEndpoint, chain: list[int], events: dict[int, dict[str, Any]]
    ) -> None:
        """One alert's changes to one URL, in order; stops at the first that cannot go now."""
        for index in chain:
            event = events[index]
            delivery = event["delivery_id"]
            if event["alert"]["status"] not in endpoint.statuses:
                continue
            if (endpoint.url, delivery) in self._done:
                continue
            content = body(event)
            secret = endpoint.secret.get_secret_value().encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"sentio-iot/{__version__}",
                DELIVERY_HEADER: delivery,
                EVENT_HEADER: event["event"],
                **endpoint.headers,
                **signed_headers(secret, int(time.time()), content),
            }
            response = await self.endpoint.post(endpoint.url, content, headers)
            if response.status_code >= 300:
                answer = f"{shown(endpoint.url)} answered {response.status_code}: {response.text.strip()[:500]}"
                self._refused.setdefault(delivery, answer)
                log.warning("webhook refused %s: %s", delivery, answer)
            self._done.add((endpoint.url, delivery))

    def _urls(self) -> list[str]:
        return [endpoint.url for endpoint in self.settings.endpoints]


def shown(url: str) -> str:
    """A URL fit for logs: no user info, query or fragment (webhook URLs often carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


PLUGIN = SinkPlugin(
    name="webhook",
    summary="Alert state changes as JSON POSTs signed with HMAC-SHA256, to configured URLs",
    settings_model="sentio_iot.settings.alert_delivery:WebhookSinkSettings",
    writer="sentio_iot.sinks.webhook:WebhookWriter",
)
