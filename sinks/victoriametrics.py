"""VictoriaMetrics writer: readings, rollups, anomalies, RUL and alerts as time series.

Series follow :mod:`sentio_iot.sinks.vm_series`. ``sinks.victoriametrics.method`` picks the
wire format: ``import`` (JSON lines to ``/api/v1/import``, the default: faster here, see
benchmarks/sinks_bench.py) or ``remote_write`` (snappy protobuf to ``/api/v1/write``).

VictoriaMetrics answers a whole request; a record it cannot store is found either before
sending or by splitting a refused batch in halves until the refused record is alone, and
reported as :class:`RejectedRecords` with VictoriaMetrics' answer. Before sending means
everything VictoriaMetrics would drop or cut while answering 204 (the import API only logs
an invalid line; samples outside the retention or over the label limits vanish or change):
see :mod:`sentio_iot.sinks.vm_series`. The retention comes from the backend's ``/flags`` at
start (``-retentionPeriod``; its default, 1 month, where the flag is not shown).

After the write comes a check of VictoriaMetrics' answer, which is 204 even when it dropped
rows a limit of its own refused (``-maxLabelsPerTimeseries`` or ``-maxLabelValueLen`` lower
than the defaults checked before, ``-storage.maxHourlySeries``, ...): its drop counters are
read around each write (:mod:`sentio_iot.sinks.write_check`), and when one rose the batch is
read back (:mod:`sentio_iot.sinks.vm_readback`); a record with a sample not stored as sent
goes to the dead-letter topic, with the counters that rose, instead of counting as written.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import httpx

from sentio_iot.config import SentioConfig
from sentio_iot.plugins import SinkPlugin
from sentio_iot.sinks.halving import refused_records
from sentio_iot.sinks.http_endpoint import HttpEndpoint
from sentio_iot.sinks.vm_payloads import group, import_body, remote_write_body
from sentio_iot.sinks.vm_readback import missing
from sentio_iot.sinks.vm_series import SAMPLERS, Defaults, Rejected, Sample
from sentio_iot.sinks.write_check import VICTORIAMETRICS_DROPS, Counters, DropWatch, describe
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, SinkRecord, Writer

log = logging.getLogger(__name__)

FIELD = "sinks.victoriametrics"
IMPORT_PATH = "/api/v1/import"
REMOTE_WRITE_PATH = "/api/v1/write"
REMOTE_WRITE_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
IMPORT_HEADERS = {"Content-Type": "application/x-ndjson"}
DEFAULT_RETENTION = "1"  # VictoriaMetrics' own default: one month
_RETENTION = re.compile(r'^-retentionPeriod="?([^"\s]+)"?', re.MULTILINE)
_PERIOD = re.compile(r"^(\d+(?:\.\d+)?)([hdwy]?)$")
_UNIT_MS = {"h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000, "y": 365 * 86_400_000}
MONTH_MS = 31 * 86_400_000  # a bare number is months, of 31 days (VictoriaMetrics' docs)


def retention_ms(flags_text: str) -> int | None:
    """``-retentionPeriod`` from a ``/flags`` page, in ms; its default when not listed; None
    when it cannot be read (then no lower bound is checked)."""
    found = _RETENTION.search(flags_text)
    period = _PERIOD.match(found.group(1) if found else DEFAULT_RETENTION)
    if period is None:
        return None
    number, unit = float(period.group(1)), period.group(2)
    return int(number * (_UNIT_MS[unit] if unit else MONTH_MS))


@dataclass(frozen=True)
class Receipt:
    """A written batch, for :meth:`VictoriaMetricsWriter.verify`."""

    samples: list[list[Sample]]
    taken: list[int]  # indexes VictoriaMetrics answered 2xx for
    before: Counters  # its drop counters before the write
    answered_at: float  # time.monotonic() of its answer


class VictoriaMetricsWriter(Writer):
    """Writes batches to one VictoriaMetrics (single node, or vminsert's prefix URL)."""

    topics = ("readings", "rollups", "anomalies", "rul", "alerts")

    def __init__(self, config: SentioConfig) -> None:
        self.settings = config.sinks.victoriametrics
        self.startup_timeout_s = config.sinks.startup_timeout_s
        self.defaults = Defaults(tenant=config.tenant, site=config.site)
        base = self.settings.url.rstrip("/")
        if self.settings.method == "import":
            self.url, self.headers, self.encode = base + IMPORT_PATH, IMPORT_HEADERS, import_body
        else:
            self.url, self.headers = base + REMOTE_WRITE_PATH, REMOTE_WRITE_HEADERS
            self.encode = remote_write_body
        self.endpoint = HttpEndpoint(
            FIELD, auth=self.settings.auth, timeout_s=self.settings.timeout_s
        )
        self.drops = DropWatch(self.endpoint.client, base, VICTORIAMETRICS_DROPS, FIELD)

    async def start(self) -> None:
        await self.endpoint.probe(self.url, self.encode({}), self.headers, self.startup_timeout_s)
        await self.drops.start()
        retention = await self._retention()
        self.defaults = replace(self.defaults, retention_ms=retention)
        days = "unchecked" if retention is None else f"{retention / 86_400_000:g} days"
        log.info("writing to %s (%s); retention %s", self.url, self.settings.method, days)

    async def _retention(self) -> int | None:
        flags = httpx.URL(self.settings.url).copy_with(path="/flags", query=None)
        try:
            response = await self.endpoint.client.get(flags)
        except httpx.HTTPError as exc:
            log.warning(
                "cannot read %s (%s): samples past the retention are not checked", flags, exc
            )
            return None
        if response.status_code != 200:
            log.warning(
                "%s answered %d: samples past the retention are not checked",
                flags,
                response.status_code,
            )
            return None
        return retention_ms(response.text)

    async def write(self, batch: Sequence[SinkRecord]) -> Receipt | None:
        samples: list[list[Sample]] = []
        reasons: dict[int, str] = {}
        for index, record in enumerate(batch):
            samples.append(self._samples(record, index, reasons))
        before = await self.drops.before()
        reasons.update(await self._send(list(range(len(batch))), samples))
        receipt = None
        if before is not None:
            taken = [i for i in range(len(batch)) if i not in reasons and samples[i]]
            receipt = Receipt(samples, taken, before, time.monotonic())
        if reasons:
            raise RejectedRecords(reasons, receipt=receipt)
        return receipt

    async def verify(self, receipt: object) -> dict[int, str]:
        """Read the batch back when VictoriaMetrics' drop counters rose during the write."""
        assert isinstance(receipt, Receipt)
        try:
            rose = await self.drops.rose_since(receipt.before, receipt.answered_at)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{self.drops.url}: {exc}") from exc
        if not rose or not receipt.taken:
            return {}
        return await self._not_stored(receipt.samples, receipt.taken, describe(rose))

    async def _not_stored(
        self, samples: list[list[Sample]], indexes: list[int], counted: str
    ) -> dict[int, str]:
        """Reasons for the records VictoriaMetrics did not store as sent (read back)."""
        flushed = await self.drops.force_flush()
        try:
            gaps = await missing(self.endpoint.client, self.settings.url, samples, indexes, flushed)
        except (httpx.HTTPError, ValueError) as exc:
            # Unverifiable now: the runtime asks again rather than count the batch written.
            raise BackendUnavailable(
                f"VictoriaMetrics dropped rows during this write ({counted}) and the batch "
                f"cannot be read back to find which: {exc}"
            ) from exc
        if gaps:
            log.warning(
                "VictoriaMetrics answered 2xx but did not store %d record(s) (%s)",
                len(gaps),
                counted,
            )
        return {
            index: (
                f"VictoriaMetrics answered 2xx but did not store {len(lost)} of "
                f"{len(samples[index])} sample(s) as sent (first: {dict(lost[0][0])} at "
                f"{lost[0][2]} ms); it counted {counted} during the write: a limit of this "
                "VictoriaMetrics refused them (-maxLabelsPerTimeseries, -maxLabelValueLen, "
                "-storage.maxHourlySeries/-maxDailySeries, -retentionPeriod)"
            )
            for index, lost in gaps.items()
        }

    async def close(self) -> None:
        await self.endpoint.close()

    def _samples(self, record: SinkRecord, index: int, reasons: dict[int, str]) -> list[Sample]:
        sampler = SAMPLERS.get(record.catalog_name)
        value = record.value
        if sampler is None or isinstance(value, bytes):
            reasons[index] = f"no series for records of {record.catalog_name}"
            return []
        out: list[Sample] = []
        try:
            for sample in sampler(value, self.defaults):
                out.append(sample)
        except Rejected as exc:
            reasons[index] = str(exc)
        except (KeyError, TypeError, ValueError) as exc:
            reasons[index] = f"record does not fit the {record.catalog_name} contract: {exc!r}"
        return out

    async def _send(self, indexes: list[int], samples: list[list[Sample]]) -> dict[int, str]:
        """Send the samples of ``indexes``; the refused ones (found by halving) with the answer."""

        async def send(subset: list[int]) -> str | None:
            body = self.encode(group(s for i in subset for s in samples[i]))
            if not body:
                return None
            response = await self.endpoint.post(self.url, body, self.headers)
            if response.status_code < 300:
                return None
            text = response.text.strip()[:500]
            return f"VictoriaMetrics answered {response.status_code}: {text}"

        return await refused_records(indexes, send)


PLUGIN = SinkPlugin(
    name="victoriametrics",
    summary="Readings, rollups, anomalies, RUL and alerts as VictoriaMetrics time series",
    settings_model="sentio_iot.settings.sinks:VictoriaMetricsSinkSettings",
    writer="sentio_iot.sinks.victoriametrics:VictoriaMetricsWriter",
)
