"""Alertmanager writer: Sentio's alerts to Alertmanager (``POST /api/v2/alerts``), acks as silences.

Consumes ``alerts`` and ``alert-commands``. What each alert becomes is
:mod:`sentio_iot.sinks.alertmanager_alerts`; what the sink still owes Alertmanager is
:mod:`sentio_iot.sinks.alertmanager_book`.

- A state change is posted at once: FIRING/ACKNOWLEDGED as firing with ``endsAt`` =
  now + ``firing_ttl_s``, RESOLVED with ``endsAt`` = its resolution. Every
  ``resend_interval_s`` all open alerts are posted again, as Alertmanager expects of a
  client (it resolves an alert whose ``endsAt`` passed).
- ACKNOWLEDGED creates a silence of that occurrence (``alert_id``), created by the user of
  the ACK command (``alert-commands``); RESOLVED (also by ``sentio alerts clear``) expires it.
- A silence made in Alertmanager over a FIRING alert acknowledges it in Sentio: the API
  relays it (``sentio_iot.api.silence_relay``: only the API may write ``alert-commands``).
  When that alert turns ACKNOWLEDGED, the sink finds it silenced already and makes no
  silence of its own (``foreign``: left alone when the alert resolves).
- Start: the latest state of every alert is read from the compacted topic; the open ones
  are posted, alerts Alertmanager holds that Sentio has not open (this pipeline's, label
  ``sentio``) are resolved, acknowledged alerts get their missing silences. So after a
  restart a resolved alert is never left firing and a firing one is not forgotten.
- Alertmanager unreachable or 5xx: BackendUnavailable, the runtime retries the batch; a
  400 is halved down to the refused alerts, which go to the dead-letter topic with the answer.

Batches are written one at a time, and never while a re-send runs, so Alertmanager never
gets an older state after a newer one. Run one process per pipeline: each process re-sends
the open alerts it knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sentio_iot.config import SentioConfig
from sentio_iot.plugins import SinkPlugin
from sentio_iot.prometheus import Family, render_families
from sentio_iot.records import now_us
from sentio_iot.sinks.alert_fields import Defaults, iso_time, key_of
from sentio_iot.sinks.alert_topic import read_alert_states
from sentio_iot.sinks.alertmanager_alerts import (
    Linking,
    pipeline_label,
    postable,
    resolved,
)
from sentio_iot.sinks.alertmanager_api import AlertmanagerApi
from sentio_iot.sinks.alertmanager_book import SILENCE_COMMENT, AlertBook
from sentio_iot.sinks.halving import refused_records
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, SinkRecord, Writer

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 120.0
DAY_US = 86_400 * 1_000_000


class AlertmanagerWriter(Writer):
    """Keeps one Alertmanager in step with Sentio's alerts."""

    topics = ("alerts", "alert-commands")

    def __init__(self, config: SentioConfig) -> None:
        self.config = config
        self.settings = config.sinks.alertmanager
        linking = Linking(
            pipeline_label(config.topics.prefix),
            Defaults(tenant=config.tenant, site=config.site),
            self.settings,
        )
        self.book = AlertBook(linking)
        self.api = AlertmanagerApi(self.settings, config.sinks.startup_timeout_s)
        self.ends: dict[int, int] = {}  # the start's read of the alerts topic stopped here
        self.reconciled = False
        self.counts = Family(
            "sentio_sink_alertmanager_total",
            "What the Alertmanager sink did: alerts posted, silences created, adopted and expired.",
            "counter",
            ("what",),
        )
        self.notified = Family(
            "sentio_sink_alertmanager_notifications",
            "Notifications Alertmanager sent or failed to send, by integration (its own counters, all its alerts).",
            "gauge",
            ("outcome", "integration"),
        )
        self._lock = asyncio.Lock()
        self._resender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.api.probe()
        states = await asyncio.to_thread(read_alert_states, self.config, READ_TIMEOUT_S)
        self.ends = states.ends
        for record in states.latest.values():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                if str(record["status"]) != "RESOLVED":
                    self.book.apply(record)
        async with self._lock:
            await self._reconcile_or_later()
        with contextlib.suppress(BackendUnavailable):
            await self._count_notifications()
        log.info(
            "alerts to %s: %d open alert(s) on %s",
            self.settings.url,
            len(self.book.open),
            "Alertmanager" if self.reconciled else "the next re-send",
        )
        self._resender = asyncio.create_task(self._resend_forever(), name="alertmanager-resend")

    async def write(self, batch: Sequence[SinkRecord]) -> None:
        async with self._lock:
            await self._write(batch)

    async def close(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resender
        await self.api.close()

    def metrics_text(self) -> str:
        return render_families([self.counts, self.notified])

    # -- state changes -----------------------------------------------------------------------

    async def _write(self, batch: Sequence[SinkRecord]) -> None:
        reasons: dict[int, str] = {}
        changes: dict[str, Mapping[str, Any]] = {}  # alert_id -> its latest state in the batch
        indexes: dict[str, list[int]] = {}
        for index, record in enumerate(batch):
            value = record.value
            try:
                if not isinstance(value, Mapping):
                    raise TypeError(f"{record.catalog_name} records are Avro, got raw bytes")
                if record.catalog_name == "alert-commands":
                    self.book.command(value)
                    continue
                if record.offset < self.ends.get(record.partition, 0):
                    continue  # in the state read at start, posted then
                alert_id = str(value["alert_id"])
                self.book.apply(value)
            except (KeyError, TypeError, ValueError) as exc:
                reasons[index] = f"record does not fit the {record.catalog_name} contract: {exc!r}"
                continue
            changes.pop(alert_id, None)  # keep topic order: the latest goes last
            changes[alert_id] = value
            indexes.setdefault(alert_id, []).append(index)
        refused = await self._post_changes(list(changes.values()))
        for alert_id, answer in refused.items():
            self.book.drop(changes[alert_id])
            for index in indexes[alert_id]:
                reasons[index] = answer
        await self._sync_silences()
        if reasons:
            raise RejectedRecords(reasons)

    async def _post_changes(self, changes: list[Mapping[str, Any]]) -> dict[str, str]:
        """Post the changes (and retired label sets); alert_id -> answer for the refused ones."""
        now = now_us()
        alerts = [postable(c, self.book.linking, now) for c in changes]
        retired = [resolved(r, now) for r in self.book.owed_retired()]

        async def send(subset: list[int]) -> str | None:
            response = await self.api.post_alerts([alerts[i] for i in subset] + retired)
            if response.status_code < 300:
                return None
            return f"Alertmanager answered {response.status_code}: {response.text.strip()[:500]}"

        if not alerts:
            if retired and await send([]) is None:
                self.book.retire.clear()
            return {}
        found = await refused_records(list(range(len(alerts))), send)
        if len(found) < len(alerts):  # a request went through, with the retired sets
            self.book.retire.clear()
        self.counts.inc("alerts_posted", by=len(alerts) - len(found))
        return {str(changes[i]["alert_id"]): answer for i, answer in found.items()}

    async def _sync_silences(self) -> None:
        """Silence newly acknowledged alerts; expire the silences of resolved ones."""
        if self.book.to_silence:
            await self._adopt_silences()
        for alert_id, record in list(self.book.to_silence.items()):
            now = now_us()
            until = now + int(self.settings.silence_days * DAY_US)
            silence = self.book.silence_for(record, iso_time(now), iso_time(until))
            silence_id = await self.api.create_silence(silence)
            self.book.silences[alert_id] = silence_id
            del self.book.to_silence[alert_id]
            self.counts.inc("silences_created")
            log.info("silence %s for %s by %s", silence_id, key_of(record), silence["createdBy"])
        for alert_id, silence_id in list(self.book.to_expire.items()):
            await self.api.expire_silence(silence_id)
            del self.book.to_expire[alert_id]
            self.counts.inc("silences_expired")
            log.info("silence %s of alert %s expired", silence_id, alert_id)

    # -- re-sends, reconciliation, silences made in Alertmanager ---------------------------

    async def _resend_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resend_interval_s)
            try:
                async with self._lock:
                    if not self.reconciled:
                        await self._reconcile_or_later()
                        continue
                    await self._resend()
                    await self._sync_silences()
                await self._count_notifications()
            except BackendUnavailable as exc:
                log.warning(
                    "re-send to Alertmanager failed (%s): next in %gs",
                    exc,
                    self.settings.resend_interval_s,
                )
            except Exception:
                log.exception("re-send to Alertmanager failed unexpectedly")

    async def _count_notifications(self) -> None:
        self.notified.values = await self.api.notifications()

    async def _resend(self) -> None:
        now = now_us()
        alerts = [postable(r, self.book.linking, now) for r in self.book.open.values()]
        alerts += [resolved(r, now) for r in self.book.owed_retired()]
        if not alerts:
            return
        response = await self.api.post_alerts(alerts)
        if response.status_code >= 300:
            log.warning(
                "Alertmanager refused a re-send (%d): %s", response.status_code, response.text[:300]
            )
            return
        self.book.retire.clear()
        self.counts.inc("alerts_posted", by=len(alerts))

    async def _reconcile_or_later(self) -> None:
        try:
            await self._reconcile()
        except BackendUnavailable as exc:
            log.warning("Alertmanager not reconciled (%s): trying again at the next re-send", exc)

    async def _reconcile(self) -> None:
        """Make Alertmanager match the open alerts: post them, resolve the rest, fix silences."""
        pipeline = self.book.linking.pipeline
        open_ids = {str(r["alert_id"]) for r in self.book.open.values()}
        for silence in await self.api.active_silences(pipeline):
            alert_id = silence.matchers.get("alert_id")
            if alert_id is None or not silence.comment.startswith(SILENCE_COMMENT):
                continue
            if alert_id in open_ids:
                self.book.silences[alert_id] = silence.id
                self.book.to_silence.pop(alert_id, None)
            else:
                self.book.to_expire[alert_id] = silence.id
        current = set(self.book.posted.values())
        for held in await self.api.alerts(pipeline):
            label_set = tuple(sorted((str(k), str(v)) for k, v in held["labels"].items()))
            if label_set not in current:
                self.book.retire.add(label_set)
        await self._resend()
        await self._sync_silences()
        self.reconciled = True

    async def _adopt_silences(self) -> None:
        """An alert acknowledged because someone silenced it in Alertmanager (the API relayed
        the silence) keeps that silence: the sink makes none of its own."""
        ours = set(self.book.silences.values())
        for held in await self.api.alerts(self.book.linking.pipeline):
            alert_id = str(held.get("labels", {}).get("alert_id", ""))
            theirs = [s for s in held.get("status", {}).get("silencedBy") or [] if s not in ours]
            if alert_id in self.book.to_silence and theirs:
                del self.book.to_silence[alert_id]
                self.book.foreign[alert_id] = theirs[0]
                self.counts.inc("silences_adopted")
                log.info(
                    "alert %s acknowledged by silence %s made in Alertmanager", alert_id, theirs[0]
                )


PLUGIN = SinkPlugin(
    name="alertmanager",
    summary="Alerts to Prometheus Alertmanager (v2 API); acknowledgements as silences",
    settings_model="sentio_iot.settings.alert_delivery:AlertmanagerSinkSettings",
    writer="sentio_iot.sinks.alertmanager:AlertmanagerWriter",
)
