"""Sentio records as VictoriaMetrics series: the naming contract the dashboards query.

- readings: ``sentio_<metric>{device,tenant,site,source,unit,<reading labels>}``
- rollups: ``sentio_<metric>_<stat>{..., window}`` at ``window_start`` for the seven stats
- anomalies: ``sentio_anomaly_score{device,metric,detector,...}`` (+ value, expected, lower, upper)
- RUL: ``sentio_rul{device,model,model_version,unit}`` (+ lower, upper)
- alerts: ``sentio_alert_firing{device,type,severity}``: 1 while firing/acknowledged, 0 resolved

Names and label names are sanitised to ``[a-zA-Z0-9_]`` (metric names lower case); times are
milliseconds. A sample VictoriaMetrics would drop or change without saying so is reported
(``Rejected``), not sent: NaN and infinite values, timestamps at or before 1970, more than
2 days ahead or older than its retention, more labels than it keeps, label names or values
longer than it stores (it answers 204 and logs, or truncates: a write would look successful).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, "__name__" first
Sample = tuple[Labels, float, int]  # series, value, timestamp in ms

ROLLUP_STATS = ("count", "min", "max", "mean", "sum", "last", "stddev")
FIRING = ("FIRING", "ACKNOWLEDGED")
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
# VictoriaMetrics' defaults (v1.79 .. v1.151): beyond them a series loses labels or has them cut.
MAX_LABELS = 30  # -maxLabelsPerTimeseries (30, 40 in newer versions), the name included
MAX_LABEL_NAME_BYTES = 256  # -maxLabelNameLen
MAX_LABEL_VALUE_BYTES = 4096  # -maxLabelValueLen (4 KiB in newer versions, 16 KiB before)
RETENTION_MARGIN_MS = 3_600_000  # refuse a little early rather than hand VictoriaMetrics a drop


@lru_cache(maxsize=16384)
def metric_name(name: str) -> str:
    """``sentio_<name>``: lower case, every character outside ``[a-z0-9_]`` becomes ``_``."""
    return "sentio_" + _INVALID.sub("_", name.lower())


@lru_cache(maxsize=4096)
def label_name(name: str) -> str:
    """A valid label name: ``[a-zA-Z0-9_]``, not starting with a digit, not ``__``-reserved."""
    clean = _INVALID.sub("_", name) or "_"
    if clean[0].isdigit():
        clean = "_" + clean
    if clean.startswith("__"):
        clean = "label" + clean
    return clean


def window_label(window_s: int) -> str:
    if window_s == 60:
        return "1m"
    if window_s == 3600:
        return "1h"
    return f"{window_s}s"


@dataclass(frozen=True)
class Defaults:
    """Labels a record without them gets: the deployment's tenant and site."""

    tenant: str = "default"
    site: str = "local"
    retention_ms: int | None = None  # VictoriaMetrics' -retentionPeriod; None: not checked


class Rejected(ValueError):
    """A sample VictoriaMetrics would not store; the message is the reason."""


def series(name: str, labels: Mapping[str, str]) -> Labels:
    """The series' labels, sorted; Rejected when VictoriaMetrics would drop or cut some."""
    out = (("__name__", name), *sorted((k, v) for k, v in labels.items() if v != ""))
    if len(out) > MAX_LABELS:
        raise Rejected(
            f"{len(out)} labels (the name included): VictoriaMetrics keeps {MAX_LABELS} "
            "(-maxLabelsPerTimeseries) and silently drops the rest"
        )
    for key, value in out:
        if len(key) > MAX_LABEL_NAME_BYTES // 4 and len(key.encode()) > MAX_LABEL_NAME_BYTES:
            raise Rejected(
                f"label name {key[:40]!r}... is {len(key.encode())} bytes: VictoriaMetrics "
                f"cuts names over {MAX_LABEL_NAME_BYTES} (-maxLabelNameLen)"
            )
        if len(value) > MAX_LABEL_VALUE_BYTES // 4 and len(value.encode()) > MAX_LABEL_VALUE_BYTES:
            raise Rejected(
                f"label {key} is {len(value.encode())} bytes: VictoriaMetrics cuts values over "
                f"{MAX_LABEL_VALUE_BYTES} (-maxLabelValueLen)"
            )
    return out


def _device_labels(record: Mapping[str, Any], defaults: Defaults) -> dict[str, str]:
    labels = {label_name(k): v for k, v in (record.get("labels") or {}).items()}
    labels.setdefault("tenant", defaults.tenant)
    labels.setdefault("site", defaults.site)
    labels["device"] = record["device_id"]
    return labels


MAX_AHEAD_MS = 2 * 86_400_000  # VictoriaMetrics ignores samples further in the future


def _check(value: float, what: str) -> None:
    if math.isnan(value):
        raise Rejected(f"{what} is NaN: VictoriaMetrics drops NaN samples (staleness markers)")
    if math.isinf(value):
        raise Rejected(f"{what} is {value}: VictoriaMetrics cannot store an infinite value")


def _check_ts(ts_ms: int, what: str, defaults: Defaults) -> int:
    """``ts_ms`` when VictoriaMetrics stores it where it belongs; Rejected (with why) if not."""
    retention = defaults.retention_ms
    if retention is not None and ts_ms < time.time() * 1000 - retention + RETENTION_MARGIN_MS:
        raise Rejected(
            f"{what} timestamp {ts_ms} ms is older than VictoriaMetrics' retention "
            f"({retention / 86_400_000:g} days, -retentionPeriod): it would drop it"
        )
    if ts_ms <= 0:
        raise Rejected(
            f"{what} timestamp {ts_ms} ms is at or before 1970-01-01: the device clock was never "
            "set (VictoriaMetrics drops negative timestamps and files 0 under 1970)"
        )
    if ts_ms > time.time() * 1000 + MAX_AHEAD_MS:
        raise Rejected(
            f"{what} timestamp {ts_ms} ms is more than 2 days ahead of this clock: "
            "VictoriaMetrics ignores it (check the device clock)"
        )
    return ts_ms


@lru_cache(maxsize=65536)
def _reading_base(
    device: str, source: str, labels: tuple[tuple[str, str], ...], defaults: Defaults
) -> Labels:
    """A reading's labels but name and unit, sorted; cached: devices repeat their labels."""
    base = _device_labels({"device_id": device, "labels": dict(labels)}, defaults)
    base["source"] = source
    return tuple(sorted((k, v) for k, v in base.items() if v != ""))


@lru_cache(maxsize=65536)
def _reading_series(metric: str, unit: str | None, base: Labels) -> Labels:
    labels = dict(base)
    if unit is not None:
        labels["unit"] = unit
    return series(metric_name(metric), labels)


def reading_samples(record: Mapping[str, Any], defaults: Defaults) -> Iterator[Sample]:
    labels = record.get("labels") or {}
    base = _reading_base(record["device_id"], record["source"], tuple(labels.items()), defaults)
    ts = _check_ts(record["ts"] // 1000, "reading", defaults)
    bad: list[str] = []
    for metric in record["metrics"]:
        value = metric["value"]
        if value is None:
            continue  # text or unreadable: not a sample
        if value != value or value in (math.inf, -math.inf):
            bad.append(f"{metric['name']}={value}")
            continue
        yield _reading_series(metric["name"], metric.get("unit"), base), value, ts
    if bad:
        raise Rejected(
            f"metric(s) {', '.join(bad)}: VictoriaMetrics cannot store NaN or infinite values; "
            "the reading's other metrics were written"
        )


def rollup_samples(record: Mapping[str, Any], defaults: Defaults) -> Iterator[Sample]:
    labels = _device_labels(record, defaults)
    labels["window"] = window_label(record["window_s"])
    if record.get("unit") is not None:
        labels["unit"] = record["unit"]
    ts = _check_ts(record["window_start"] // 1000, "rollup", defaults)
    base = metric_name(record["metric"])
    for stat in ROLLUP_STATS:
        value = float(record[stat])
        _check(value, f"rollup {record['metric']} {stat}")
        yield series(f"{base}_{stat}", labels), value, ts


def anomaly_samples(record: Mapping[str, Any], defaults: Defaults) -> Iterator[Sample]:
    labels = _device_labels(record, defaults)
    labels["metric"] = record["metric"]
    labels["detector"] = record["detector"]
    ts = _check_ts(record["ts"] // 1000, "anomaly", defaults)
    for field in ("score", "value", "expected", "lower", "upper"):
        value = record.get(field)
        if value is None:
            continue
        _check(value, f"anomaly {field}")
        yield series(f"sentio_anomaly_{field}", labels), value, ts


def rul_samples(record: Mapping[str, Any], defaults: Defaults) -> Iterator[Sample]:
    labels = _device_labels(record, defaults)
    labels.update(
        model=record["model_name"], model_version=record["model_version"], unit=record["rul_unit"]
    )
    ts = _check_ts(record["ts"] // 1000, "rul", defaults)
    for field, name in (
        ("rul", "sentio_rul"),
        ("lower", "sentio_rul_lower"),
        ("upper", "sentio_rul_upper"),
    ):
        value = record.get(field)
        if value is None:
            continue
        _check(value, f"rul {field}")
        yield series(name, labels), value, ts


def alert_samples(record: Mapping[str, Any], defaults: Defaults) -> Iterator[Sample]:
    labels = _device_labels(record, defaults)
    labels.update(type=record["type"], severity=str(record["severity"]))
    status = str(record["status"])
    # The value holds from the change on: resolved at end_ts, acknowledged at ack_ts.
    changed: int = record["start_ts"]
    if status == "RESOLVED" and record.get("end_ts"):
        changed = record["end_ts"]
    elif status == "ACKNOWLEDGED" and record.get("ack_ts"):
        changed = record["ack_ts"]
    ts = _check_ts(changed // 1000, "alert", defaults)
    yield series("sentio_alert_firing", labels), 1.0 if status in FIRING else 0.0, ts


SAMPLERS: dict[str, Callable[[Mapping[str, Any], Defaults], Iterator[Sample]]] = {
    "readings": reading_samples,
    "rollups": rollup_samples,
    "anomalies": anomaly_samples,
    "rul": rul_samples,
    "alerts": alert_samples,
}
