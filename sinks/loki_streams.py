"""Sentio records as Loki log lines: low-cardinality labels, everything else in metadata.

Labels: ``service_name="sentio"``, ``stream`` (device-events, alerts, anomalies), ``tenant``,
``site``, ``kind`` (the device kind, when labelled), ``level`` and ``event``. Structured
metadata: ``device_id`` and, where they apply, ``alert_id``, ``alert_type``, ``metric``,
``trace_id``. The line is one human sentence, e.g. ``pump-0003 OFFLINE: no reading for 30 s``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentio_iot.sinks.loki_push import Entry, metadata

Labels = tuple[tuple[str, str], ...]
Logged = tuple[Labels, Entry]

SERVICE = "sentio"
ERROR_EVENTS = frozenset({"ERROR", "TIMEOUT", "EXCEPTION", "OFFLINE"})


@dataclass(frozen=True)
class Defaults:
    tenant: str = "default"
    site: str = "local"


def trace_id(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """The trace id of a W3C ``traceparent`` header (``00-<trace id>-<span id>-<flags>``)."""
    for name, value in headers:
        if name == "traceparent" and value:
            parts = value.decode("latin-1").split("-")
            if len(parts) >= 3 and len(parts[1]) == 32:
                return parts[1]
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


def _labels(
    stream: str, record: Mapping[str, Any], defaults: Defaults, level: str, event: str
) -> Labels:
    device = record.get("labels") or {}
    labels = [
        ("service_name", SERVICE),
        ("stream", stream),
        ("tenant", device.get("tenant") or defaults.tenant),
        ("site", device.get("site") or defaults.site),
    ]
    if device.get("kind"):
        labels.append(("kind", device["kind"]))
    labels += [("level", level), ("event", event)]
    return tuple(labels)


def device_event(record: Mapping[str, Any], defaults: Defaults, trace: str | None) -> Logged:
    kind = str(record["kind"])
    level = "error" if kind in ERROR_EVENTS else "info"
    message = one_line(record.get("message") or "")
    line = (
        f"{record['device_id']} {kind}: {message}" if message else f"{record['device_id']} {kind}"
    )
    entry = Entry(
        record["ts"] * 1000,
        one_line(line),  # a device id may hold a line break too
        metadata({"device_id": record["device_id"], "trace_id": trace}),
    )
    return _labels("device-events", record, defaults, level, kind), entry


def alert_time_us(record: Mapping[str, Any], kafka_ms: int) -> int:
    """When this state change happened: resolved at end_ts, acknowledged at ack_ts, raised at
    start_ts; a repeat (count > 1) at the time Kafka took it (stable across re-deliveries)."""
    status = str(record["status"])
    if status == "RESOLVED" and record.get("end_ts"):
        return int(record["end_ts"])
    if status == "ACKNOWLEDGED" and record.get("ack_ts"):
        return int(record["ack_ts"])
    if record.get("count", 1) > 1 and kafka_ms > 0:
        return kafka_ms * 1000
    return int(record["start_ts"])


def alert(
    record: Mapping[str, Any], defaults: Defaults, trace: str | None, kafka_ms: int = 0
) -> Logged:
    status, severity = str(record["status"]), str(record["severity"])
    message = one_line(record.get("message") or "")
    line = f"{record['device_id']} {record['type']} {severity} {status}"
    if message:
        line += f": {message}"
    details = record.get("details") or {}
    entry = Entry(
        alert_time_us(record, kafka_ms) * 1000,
        one_line(line),
        metadata(
            {
                "device_id": record["device_id"],
                "alert_id": record["alert_id"],
                "alert_type": record["type"],
                "metric": details.get("metric"),
                "trace_id": trace,
            }
        ),
    )
    return _labels("alerts", record, defaults, severity.lower(), status), entry


def anomaly(record: Mapping[str, Any], defaults: Defaults, trace: str | None) -> Logged:
    line = (
        f"{record['device_id']} {record['metric']} anomaly: value {record['value']:g}, "
        f"score {record['score']:.3g} over threshold {record['threshold']:g} "
        f"({record['detector']} {record['detector_version']})"
    )
    if record.get("expected") is not None:
        line += f", expected {record['expected']:g}"
    entry = Entry(
        record["ts"] * 1000,
        one_line(line),
        metadata({"device_id": record["device_id"], "metric": record["metric"], "trace_id": trace}),
    )
    return _labels("anomalies", record, defaults, "warning", "anomaly"), entry


LOGGERS: dict[str, Callable[..., Logged]] = {
    "device-events": device_event,
    "anomalies": anomaly,
}
