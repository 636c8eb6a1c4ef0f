"""A device's series from VictoriaMetrics ``query_range``: raw samples or rollups.

The source follows the range and step asked for (the roadmap's downsampling for historical
queries): a short range at a fine step reads the raw samples; a step of an hour or more
reads the 1 h rollups; anything between reads the 1 min rollups (their ``_mean``).
Series written without rollups (the RUL predictions, a few per device and minute) are read
raw at any range: beyond the raw range, as the mean of the samples in each step
(``avg_over_time``), so a 30-day RUL trend is one point per step, not empty.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from sentio_iot.errors import ConnectError, DataError
from sentio_iot.settings.api import HistorySettings

_INVALID = re.compile(r"[^a-zA-Z0-9_]")
NO_ROLLUPS = frozenset({"rul"})  # metrics of series the sinks write without rollups


class SeriesRequestError(DataError):
    """A series request that cannot be answered as asked (the API answers 422)."""


@dataclass(frozen=True)
class Plan:
    source: str  # raw, raw_averaged, rollup_1m, rollup_1h
    query: str
    step_s: float


def metric_name(name: str) -> str:
    """The series name the VictoriaMetrics sink writes (sinks/vm_series.py)."""
    return "sentio_" + _INVALID.sub("_", name.lower())


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan(
    settings: HistorySettings,
    device_id: str,
    tenant: str,
    metric: str,
    start_s: float,
    end_s: float,
    step_s: float | None,
) -> Plan:
    span = end_s - start_s
    if span <= 0:
        raise SeriesRequestError("from must be before to")
    step = step_s if step_s is not None else max(1.0, span / 500)
    if span / step > settings.max_points:
        raise SeriesRequestError(
            f"{span / step:.0f} points asked; at most {settings.max_points}: raise step"
        )
    selector = f"device={_quote(device_id)},tenant={_quote(tenant)}"
    name = metric_name(metric)
    if step < 60 and span <= settings.raw_max_range_s:
        return Plan("raw", f"{name}{{{selector}}}", step)
    if metric in NO_ROLLUPS:
        window = f"{math.ceil(step)}s"
        return Plan("raw_averaged", f"avg_over_time({name}{{{selector}}}[{window}])", step)
    window = "1h" if step >= settings.hourly_min_step_s else "1m"
    return Plan(f"rollup_{window}", f'{name}_mean{{{selector},window="{window}"}}', step)


async def query_range(
    client: httpx.AsyncClient,
    base_url: str,
    chosen: Plan,
    start_s: float,
    end_s: float,
    headers: Mapping[str, str] | None = None,
) -> tuple[list[tuple[int, float]], str | None]:
    """(ts in µs, value) points of the first series the query returns, and its ``unit`` label
    where the series carries one (sentio_rul does: cycles or hours); ``headers``: its auth."""
    params = {
        "query": chosen.query,
        "start": f"{start_s:.3f}",
        "end": f"{end_s:.3f}",
        "step": f"{chosen.step_s:g}s",
    }
    try:
        response = await client.get(
            f"{base_url.rstrip('/')}/api/v1/query_range", params=params, headers=headers
        )
    except httpx.HTTPError as exc:
        raise ConnectError(f"VictoriaMetrics at {base_url} cannot be reached: {exc}") from exc
    if response.status_code != 200:
        raise ConnectError(
            f"VictoriaMetrics answered {response.status_code}: {response.text[:200]}"
        )
    results = response.json().get("data", {}).get("result", [])
    if not results:
        return [], None
    first = results[0]
    points = [(int(float(ts) * 1_000_000), float(value)) for ts, value in first["values"]]
    return points, first.get("metric", {}).get("unit")
