"""What a backend dropped while answering 2xx: its own drop counters, read around each write.

VictoriaMetrics and VictoriaLogs answer 204 to a write and then drop what a limit of theirs
refuses (a series over ``-maxLabelsPerTimeseries`` or ``-storage.maxHourlySeries``, a log
line over ``-insert.maxFieldsPerLine`` or older than ``-maxBackfillAge``, ...), counting it
only in their ``/metrics``. A writer reads those counters before and after each write; when
one rose during the write (this write's or another client's drop: the counters are the
backend's, not ours), it reads the batch back and dead-letters what is not stored as sent.
Counters that cannot be read (a proxy in front, no ``/metrics``) turn the check off with one
warning at start; the checks before the write still hold.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping

import httpx

log = logging.getLogger(__name__)

# VictoriaMetrics (single node 1.79 and later; vminsert and vmstorage name them the same)
VICTORIAMETRICS_DROPS = (
    "vm_rows_ignored_total",
    "vm_rows_invalid_total",
    "vm_metrics_with_dropped_labels_total",
    "vm_too_long_label_names_total",
    "vm_too_long_label_values_total",
    "vm_hourly_series_limit_rows_dropped_total",
    "vm_daily_series_limit_rows_dropped_total",
)
# VictoriaLogs 1.x
VICTORIALOGS_DROPS = (
    "vl_rows_dropped_total",
    "vl_too_long_lines_skipped_total",
)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")

Counters = dict[str, float]


def drop_counters(metrics_text: str, families: tuple[str, ...]) -> Counters:
    """``name{labels} -> value`` of every sample of ``families`` in a Prometheus text page."""
    wanted = set(families)
    found: Counters = {}
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in wanted:
            continue
        try:
            found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        except ValueError:
            continue
    return found


def risen(before: Mapping[str, float], after: Mapping[str, float]) -> Counters:
    """The counters that rose from ``before`` to ``after`` and by how much (a restart: reset)."""
    return {
        name: value - before.get(name, 0.0)
        for name, value in after.items()
        if value > before.get(name, 0.0)
    }


def describe(rose: Mapping[str, float]) -> str:
    """``vm_rows_ignored_total{reason="big_timestamp"} +2, ...`` for a dead letter's reason."""
    return ", ".join(f"{name} +{delta:g}" for name, delta in sorted(rose.items()))


class DropWatch:
    """Reads one backend's drop counters from its ``/metrics`` page, shared by all batches.

    VictoriaMetrics counts a drop while it answers the write, but its ``/metrics`` page shows
    storage counters computed up to a second earlier (it caches them): a reading proves that
    a write's drops are counted only when it was fetched ``CACHED_S`` after the answer.
    Batches written close together share such readings.
    """

    CACHED_S = 1.1

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, families: tuple[str, ...], field: str
    ) -> None:
        self.client = client
        self.url = httpx.URL(base_url).copy_with(path="/metrics", query=None)
        self.families = families
        self.field = field
        self.enabled = True
        self._last: Counters | None = None
        self._last_fetched = float("-inf")  # time.monotonic() when the last reading was asked
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Turn the check off (with one warning) when the counters cannot be read."""
        counters = await self._fetch()
        if counters is None or not counters:
            self.enabled = False
            log.warning(
                "%s: cannot read the drop counters at %s (%s): what the backend drops while "
                "answering 2xx is found only by the checks before the write",
                self.field,
                self.url,
                "unreachable or refused" if counters is None else "none of them listed",
            )

    async def before(self) -> Counters | None:
        """Counters from before now (the last reading, or a new one); None when unchecked."""
        if not self.enabled:
            return None
        return self._last if self._last is not None else await self._fetch()

    async def rose_since(self, before: Counters | None, answered_at: float) -> Counters:
        """What rose from ``before`` until after a write answered at ``answered_at``
        (``time.monotonic()``); empty when unchecked. BackendUnavailable-free: an unreadable
        page raises ``httpx.HTTPError`` so the caller can ask again."""
        if before is None:
            return {}
        ready = answered_at + self.CACHED_S
        await asyncio.sleep(max(0.0, ready - time.monotonic()))
        async with self._lock:
            stale = self._last_fetched < ready or self._last is None
            if stale and await self._fetch() is None:
                raise httpx.HTTPError(f"{self.url} unreadable")
            assert self._last is not None
            return risen(before, self._last)

    async def _fetch(self) -> Counters | None:
        asked = time.monotonic()
        try:
            response = await self.client.get(self.url)
        except httpx.HTTPError as exc:
            log.debug("%s: %s unreadable: %s", self.field, self.url, exc)
            return None
        if response.status_code != 200:
            return None
        self._last = drop_counters(response.text, self.families)
        self._last_fetched = asked
        return self._last

    async def force_flush(self) -> bool:
        """Make what was just written searchable (``/internal/force_flush``); False if refused."""
        url = self.url.copy_with(path="/internal/force_flush")
        try:
            response = await self.client.get(url)
        except httpx.HTTPError:
            return False
        return response.status_code == 200
