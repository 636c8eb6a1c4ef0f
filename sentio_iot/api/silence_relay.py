"""Silences made in Alertmanager acknowledge Sentio's alerts: an ACK on ``alert-commands``.

When someone silences a firing Sentio alert in Alertmanager (its UI, ``amtool``, the API),
the API acknowledges it in Sentio as ``POST .../acknowledge`` does (same record, topic and
producer), naming the silence's author; the alerts agent then emits ACKNOWLEDGED as for any
ack. The API relays it, not the Alertmanager sink, because only the API may write
``alert-commands`` (the ``api`` role of ``sentio stack up --secure``).

Every ``sinks.alertmanager.resend_interval_s``, once the views are rebuilt, the alerts the
views hold as FIRING are looked up in Alertmanager (``sinks.alertmanager.url`` and ``auth``):
one that a silence not made by Sentio (comment ``Acknowledged in Sentio``) covers is acked
once. Nothing firing: no request. Alertmanager away: one warning, tried again next time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sentio_iot.api.commands import AlertCommands
from sentio_iot.api.views import Views
from sentio_iot.config import SentioConfig
from sentio_iot.errors import SentioError
from sentio_iot.sinks.alert_fields import key_of
from sentio_iot.sinks.alertmanager_alerts import pipeline_label
from sentio_iot.sinks.alertmanager_api import AlertmanagerApi
from sentio_iot.sinks.alertmanager_book import FIRING, SILENCE_COMMENT

log = logging.getLogger(__name__)


class SilenceRelay:
    """Acks in Sentio the firing alerts that a silence made in Alertmanager covers."""

    def __init__(self, config: SentioConfig, views: Views, commands: AlertCommands) -> None:
        self.settings = config.sinks.alertmanager
        self.api = AlertmanagerApi(self.settings, config.sinks.startup_timeout_s)
        self.pipeline = pipeline_label(config.topics.prefix)
        self.views = views
        self.commands = commands
        self.relayed: dict[str, str] = {}  # alert_id -> the silence that acked it
        self.acks = 0
        self._failing: str | None = None  # what went wrong last time (said once)

    async def run(self, ready: Callable[[], bool]) -> None:
        """Relay every ``resend_interval_s`` once ``ready()`` (the views rebuilt); until
        cancelled."""
        while True:
            await asyncio.sleep(self.settings.resend_interval_s)
            if not ready():
                continue
            try:
                await self.relay_once()
                if self._failing is not None:
                    log.info("silences of %s relayed again", self.settings.url)
                self._failing = None
            except SentioError as exc:  # Alertmanager away, or the ACK refused by Kafka
                if str(exc) != self._failing:
                    log.warning(
                        "silences of %s not relayed (%s): trying again every %gs",
                        self.settings.url,
                        exc,
                        self.settings.resend_interval_s,
                    )
                self._failing = str(exc)
            except Exception:
                log.exception("relaying Alertmanager silences failed unexpectedly")

    async def relay_once(self) -> int:
        """Ack the firing alerts silenced in Alertmanager since the last call; how many."""
        firing = {
            str(update.data["alert_id"]): update.data
            for update in self.views.alert_list()
            if update.data.get("status") == FIRING
        }
        for alert_id in set(self.relayed) - set(firing):
            del self.relayed[alert_id]  # acknowledged, resolved or replaced since
        if not set(firing) - set(self.relayed):
            return 0
        silences: dict[str, Mapping[str, Any]] | None = None
        acked = 0
        for held in await self.api.alerts(self.pipeline):
            alert_id = str(held.get("labels", {}).get("alert_id", ""))
            record = firing.get(alert_id)
            silenced_by = held.get("status", {}).get("silencedBy") or []
            if record is None or alert_id in self.relayed or not silenced_by:
                continue
            if silences is None:
                silences = await self.api.silences_by_id()
            theirs = [s for s in silenced_by if not _made_by_sentio(silences.get(s, {}))]
            if not theirs:
                continue
            await self._ack(record, theirs[0], silences.get(theirs[0], {}))
            self.relayed[alert_id] = theirs[0]
            acked += 1
        return acked

    async def _ack(
        self, record: Mapping[str, Any], silence_id: str, silence: Mapping[str, Any]
    ) -> None:
        user = str(silence.get("createdBy") or "alertmanager")
        comment = f"silenced in Alertmanager (silence {silence_id}): {silence.get('comment', '')}"
        await asyncio.to_thread(
            self.commands.send,
            str(record["device_id"]),
            str(record["type"]),
            "ACK",
            user,
            str(record["alert_id"]),
            comment.strip().rstrip(":"),
        )
        self.acks += 1
        log.info("alert %s silenced in Alertmanager by %s: acknowledged", key_of(record), user)

    async def close(self) -> None:
        await self.api.close()


def _made_by_sentio(silence: Mapping[str, Any]) -> bool:
    """The Alertmanager sink's own silence for an ack given in Sentio."""
    return str(silence.get("comment", "")).startswith(SILENCE_COMMENT)
