"""A device's events from VictoriaLogs (what the loki sink wrote): LogsQL over a time range.

The sink's labels and metadata (sinks/loki_streams.py) are the contract: stream
``device-events``, ``tenant``, ``event``, ``level``, metadata ``device_id``; the line is the
human sentence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from sentio_iot.errors import ConnectError


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def logsql(device_id: str, tenant: str, start_s: float, end_s: float, limit: int) -> str:
    return (
        f"_time:[{_rfc3339(start_s)}, {_rfc3339(end_s)}) "
        f'{{stream="device-events",tenant={_quote(tenant)}}} device_id:={_quote(device_id)} '
        f"| sort by (_time desc) | limit {limit}"
    )


def _event(line: dict[str, Any]) -> dict[str, Any]:
    when = datetime.fromisoformat(line["_time"].replace("Z", "+00:00"))
    return {
        "device_id": line.get("device_id", ""),
        "ts": int(when.timestamp() * 1_000_000),
        "kind": line.get("event", "INFO"),
        "level": line.get("level", "info"),
        "message": line.get("_msg", ""),
    }


async def device_events(
    client: httpx.AsyncClient, base_url: str, query: str, headers: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The events the query finds, newest first (``headers``: its auth)."""
    url = f"{base_url.rstrip('/')}/select/logsql/query"
    try:
        response = await client.post(url, data={"query": query}, headers=headers)
    except httpx.HTTPError as exc:
        raise ConnectError(f"VictoriaLogs at {base_url} cannot be reached: {exc}") from exc
    if response.status_code != 200:
        raise ConnectError(f"VictoriaLogs answered {response.status_code}: {response.text[:200]}")
    return [_event(json.loads(line)) for line in response.text.splitlines() if line.strip()]
