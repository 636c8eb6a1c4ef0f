"""Read a written batch back from VictoriaMetrics: which samples are not stored as sent.

Used only when VictoriaMetrics' drop counters rose during a write (``sinks.write_check``).
The batch's series are asked for by exact selectors at ``/api/v1/export`` over the batch's
time range, after ``/internal/force_flush`` made the write searchable; a sample counts as
stored when a series with exactly its labels holds its timestamp (the value may differ:
with deduplication VictoriaMetrics keeps one sample per interval, which is a write). A
series whose labels VictoriaMetrics cut or dropped is stored under other labels, so its
samples are missing here, as they are for the dashboards that query the labels sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence

import httpx

from sentio_iot.sinks.vm_series import Labels, Sample

EXPORT_PATH = "/api/v1/export"
SELECTORS_PER_REQUEST = 200
SETTLE_S = (0.5, 1.0, 1.5)  # when force_flush is refused, or the index lags: look again


def selector(labels: Labels) -> str:
    """``{__name__="x",a="b"}`` matching this series (and any with more labels)."""
    return (
        "{"
        + ",".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in labels)
        + "}"
    )


def _key(labels: Labels) -> frozenset[tuple[str, str]]:
    return frozenset((name, value) for name, value in labels if value != "")


async def stored(
    client: httpx.AsyncClient, base_url: str, samples: Iterable[Sample]
) -> set[tuple[frozenset[tuple[str, str]], int]]:
    """``(labels, ts)`` of the given samples that VictoriaMetrics holds now."""
    wanted = list(samples)
    if not wanted:
        return set()
    series = sorted({labels for labels, _, _ in wanted})
    start = min(ts for _, _, ts in wanted) - 1
    end = max(ts for _, _, ts in wanted) + 1
    url = httpx.URL(base_url).copy_with(path=EXPORT_PATH, query=None)
    found: set[tuple[frozenset[tuple[str, str]], int]] = set()
    for first in range(0, len(series), SELECTORS_PER_REQUEST):
        chunk = series[first : first + SELECTORS_PER_REQUEST]
        form = [("match[]", selector(labels)) for labels in chunk]
        form += [("start", f"{start / 1000:.3f}"), ("end", f"{end / 1000:.3f}")]
        response = await client.post(url, data=_form(form))
        response.raise_for_status()
        for line in response.text.splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            key = frozenset((str(k), str(v)) for k, v in doc["metric"].items())
            found.update((key, int(ts)) for ts in doc["timestamps"])
    return found


def _form(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


async def missing(
    client: httpx.AsyncClient,
    base_url: str,
    samples: Sequence[Sequence[Sample]],
    indexes: Iterable[int],
    flushed: bool,
) -> dict[int, list[Sample]]:
    """``index -> samples not stored`` among ``samples[index]`` for ``indexes``."""
    todo = {i: list(samples[i]) for i in indexes if samples[i]}
    waits = iter(SETTLE_S if not flushed else SETTLE_S[:1])
    while True:
        found = await stored(client, base_url, (s for group in todo.values() for s in group))
        gaps = {
            i: [s for s in group if (_key(s[0]), s[2]) not in found] for i, group in todo.items()
        }
        gaps = {i: group for i, group in gaps.items() if group}
        wait = next(waits, None)
        if not gaps or wait is None:
            return gaps
        todo = gaps
        await asyncio.sleep(wait)
