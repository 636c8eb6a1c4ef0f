"""Read pushed log lines back from VictoriaLogs: which are not stored as sent.

Used only when VictoriaLogs' drop counters rose during a push (``sinks.write_check``). Each
stream of the batch is asked for at ``/select/logsql/query`` by its exact labels over the
batch's time range, after ``/internal/force_flush``; a line counts as stored when its stream
holds a line with the same text at the same nanosecond.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import httpx

from sentio_iot.sinks.loki_push import label_string
from sentio_iot.sinks.loki_streams import Labels, Logged

QUERY_PATH = "/select/logsql/query"
SETTLE_S = (0.5, 1.0, 1.5)  # when force_flush is refused: look again before calling it lost
MAX_LINES = 100_000


def time_ns(text: str) -> int:
    """``2026-12-07T13:15:38.284323609Z`` (RFC 3339, VictoriaLogs' ``_time``) as Unix ns."""
    head, _, fraction = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(head + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def rfc3339(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


async def _stored(
    client: httpx.AsyncClient, url: httpx.URL, labels: Labels, start_ns: int, end_ns: int
) -> set[tuple[int, str]]:
    query = f"_stream:{label_string(labels)} _time:[{rfc3339(start_ns)}, {rfc3339(end_ns)}]"
    response = await client.post(url, data={"query": query, "limit": str(MAX_LINES)})
    response.raise_for_status()
    found: set[tuple[int, str]] = set()
    for line in response.text.splitlines():
        if line.strip():
            doc = json.loads(line)
            found.add((time_ns(doc["_time"]), str(doc.get("_msg", ""))))
    return found


async def stored(
    client: httpx.AsyncClient, base_url: str, lines: Iterable[Logged]
) -> set[tuple[Labels, int, str]]:
    """``(labels, ts_ns, line)`` of the given lines that VictoriaLogs holds now."""
    by_stream: dict[Labels, list[int]] = {}
    for labels, entry in lines:
        by_stream.setdefault(labels, []).append(entry.ts_ns)
    url = httpx.URL(base_url).copy_with(path=QUERY_PATH, query=None)
    found: set[tuple[Labels, int, str]] = set()
    for labels, stamps in by_stream.items():
        got = await _stored(client, url, labels, min(stamps) - 1, max(stamps) + 1)
        found.update((labels, ts, text) for ts, text in got)
    return found


async def missing(
    client: httpx.AsyncClient, base_url: str, logged: Mapping[int, Logged], flushed: bool
) -> dict[int, Logged]:
    """``index -> line`` for each pushed line VictoriaLogs does not hold."""
    todo = dict(logged)
    waits: Sequence[float] = SETTLE_S if not flushed else SETTLE_S[:1]
    for wait in (*waits, None):
        found = await stored(client, base_url, todo.values())
        todo = {
            i: (labels, entry)
            for i, (labels, entry) in todo.items()
            if (labels, entry.ts_ns, entry.line) not in found
        }
        if not todo or wait is None:
            break
        await asyncio.sleep(wait)
    return todo
