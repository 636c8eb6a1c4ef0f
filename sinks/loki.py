"""Loki writer: device events, alerts and anomalies as log lines through Loki's push API.

Lines, labels and metadata follow :mod:`sentio_iot.sinks.loki_streams`. The body is a
snappy-compressed protobuf ``PushRequest`` (``sinks.loki.format: protobuf``) or the JSON
push body (``json``). VictoriaLogs takes both at ``/insert/loki/api/v1/push``. A request the
backend refuses (400: too old, too long, invalid) is halved until the refused records are
found; they go to the dead-letter topic with the answer. Lines VictoriaLogs would drop or
misdate while answering 204 are found before the push (:mod:`sentio_iot.sinks.loki_limits`);
what a VictoriaLogs with lower limits than those drops anyway (``-insert.maxFieldsPerLine``,
``-maxBackfillAge``, ...) is found after it: its drop counters are read around each push
(:mod:`sentio_iot.sinks.write_check`), and when one rose the batch is read back
(:mod:`sentio_iot.sinks.vl_readback`); a line not stored goes to the dead-letter topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from sentio_iot.config import SentioConfig
from sentio_iot.plugins import SinkPlugin
from sentio_iot.sinks import loki_limits, loki_streams
from sentio_iot.sinks.halving import refused_records
from sentio_iot.sinks.http_endpoint import HttpEndpoint
from sentio_iot.sinks.loki_push import (
    JSON_HEADERS,
    PROTOBUF_HEADERS,
    group_streams,
    json_body,
    protobuf_body,
)
from sentio_iot.sinks.loki_streams import Defaults, Logged
from sentio_iot.sinks.vl_readback import missing
from sentio_iot.sinks.write_check import VICTORIALOGS_DROPS, Counters, DropWatch, describe
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, SinkRecord, Writer

log = logging.getLogger(__name__)

FIELD = "sinks.loki"


@dataclass(frozen=True)
class Receipt:
    """A pushed batch, for :meth:`LokiWriter.verify`."""

    taken: dict[int, Logged]  # the lines the backend answered 2xx for
    before: Counters
    answered_at: float  # time.monotonic()


class LokiWriter(Writer):
    """Pushes batches of log lines to Loki or VictoriaLogs."""

    topics = ("device-events", "alerts", "anomalies")

    def __init__(self, config: SentioConfig) -> None:
        self.settings = config.sinks.loki
        self.startup_timeout_s = config.sinks.startup_timeout_s
        self.defaults = Defaults(tenant=config.tenant, site=config.site)
        headers = {"X-Scope-OrgID": self.settings.tenant_id} if self.settings.tenant_id else {}
        if self.settings.format == "protobuf":
            self.encode, self.headers = protobuf_body, PROTOBUF_HEADERS
        else:
            self.encode, self.headers = json_body, JSON_HEADERS
        self.endpoint = HttpEndpoint(
            FIELD, auth=self.settings.auth, timeout_s=self.settings.timeout_s, headers=headers
        )
        self.bounds = loki_limits.TimeBounds()
        self.drops: DropWatch | None = None  # VictoriaLogs only: Loki refuses with 400

    async def start(self) -> None:
        await self.endpoint.probe(
            self.settings.url, self.encode([]), self.headers, self.startup_timeout_s
        )
        self.bounds = await self._bounds()
        log.info(
            "pushing to %s (%s); lines kept %s",
            self.settings.url,
            self.settings.format,
            "as Loki's limits say"
            if self.bounds.max_age_ns is None
            else f"up to {self.bounds.max_age_ns / loki_limits.DAY_NS:g} days old (VictoriaLogs)",
        )

    async def _bounds(self) -> loki_limits.TimeBounds:
        """VictoriaLogs lists its retention at /flags; Loki has no such page (and says 400)."""
        flags = httpx.URL(self.settings.url).copy_with(path="/flags", query=None)
        try:
            response = await self.endpoint.client.get(flags)
        except httpx.HTTPError:
            return loki_limits.TimeBounds()
        lines = [line for line in response.text.splitlines() if line.strip()]
        if response.status_code != 200 or not all(line.startswith("-") for line in lines):
            return loki_limits.TimeBounds()  # not a VictoriaMetrics-family /flags page
        self.drops = DropWatch(self.endpoint.client, self.settings.url, VICTORIALOGS_DROPS, FIELD)
        await self.drops.start()
        return loki_limits.victorialogs_bounds(response.text)

    async def write(self, batch: Sequence[SinkRecord]) -> Receipt | None:
        logged: dict[int, Logged] = {}
        reasons: dict[int, str] = {}
        for index, record in enumerate(batch):
            try:
                line = self.log_line(record)
            except (KeyError, TypeError, ValueError) as exc:
                reasons[index] = f"record does not fit the {record.catalog_name} contract: {exc!r}"
                continue
            refused = loki_limits.problem(line, self.bounds)
            if refused is None:
                logged[index] = line
            else:
                reasons[index] = refused

        async def send(subset: list[int]) -> str | None:
            response = await self.endpoint.post(
                self.settings.url,
                self.encode(group_streams([logged[i] for i in subset])),
                self.headers,
            )
            if response.status_code < 300:
                return None
            return f"{self.settings.url} answered {response.status_code}: {response.text.strip()[:500]}"

        before = await self.drops.before() if self.drops is not None else None
        reasons.update(await refused_records(sorted(logged), send))
        receipt = None
        if before is not None:
            taken = {i: line for i, line in logged.items() if i not in reasons}
            receipt = Receipt(taken, before, time.monotonic())
        if reasons:
            raise RejectedRecords(reasons, receipt=receipt)
        return receipt

    async def verify(self, receipt: object) -> dict[int, str]:
        """Read the batch back when VictoriaLogs' drop counters rose during the push."""
        assert isinstance(receipt, Receipt) and self.drops is not None
        try:
            rose = await self.drops.rose_since(receipt.before, receipt.answered_at)
            if not rose or not receipt.taken:
                return {}
            flushed = await self.drops.force_flush()
            gaps = await missing(self.endpoint.client, self.settings.url, receipt.taken, flushed)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise BackendUnavailable(
                f"cannot read back a push from {self.settings.url}: {exc}"
            ) from exc
        counted = describe(rose)
        if gaps:
            log.warning(
                "VictoriaLogs answered 2xx but did not store %d line(s) (%s)", len(gaps), counted
            )
        return {
            index: (
                f"VictoriaLogs answered 2xx but did not store this line (time {entry.ts_ns} ns, "
                f"{len(labels)} labels, {len(entry.metadata)} metadata fields); it counted "
                f"{counted} during the push: a limit of this VictoriaLogs dropped it "
                "(-insert.maxFieldsPerLine, -insert.maxLineSizeBytes, -maxBackfillAge, "
                "-retentionPeriod, -futureRetention)"
            )
            for index, (labels, entry) in gaps.items()
        }

    def log_line(self, record: SinkRecord) -> Logged:
        value = record.value
        if isinstance(value, bytes):
            raise TypeError(f"{record.catalog_name} records are Avro, got raw bytes")
        trace = loki_streams.trace_id(record.headers)
        if record.catalog_name == "alerts":
            return loki_streams.alert(value, self.defaults, trace, record.timestamp_ms)
        logger = loki_streams.LOGGERS.get(record.catalog_name)
        if logger is None:
            raise ValueError(f"no log lines for records of {record.catalog_name}")
        return logger(value, self.defaults, trace)

    async def close(self) -> None:
        await self.endpoint.close()


PLUGIN = SinkPlugin(
    name="loki",
    summary="Device events, alerts and anomalies as log lines (Loki push API; VictoriaLogs)",
    settings_model="sentio_iot.settings.sinks:LokiSinkSettings",
    writer="sentio_iot.sinks.loki:LokiWriter",
)
