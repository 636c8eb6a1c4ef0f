"""A Sentio alert as Alertmanager's v2 API takes it (``POST /api/v2/alerts``).

Labels (what routes, groups and silences match): ``alertname`` (the alert type),
``device``, ``severity`` (lower case: critical, major, minor, warning, indeterminate),
``tenant``, ``site``, ``alert_id`` (one occurrence: a silence of it never covers the next),
``sentio`` (the pipeline: the topic prefix, so pipelines sharing one Alertmanager leave each
other's alerts alone), and the device's own labels (``kind``, ``line``, ...) where their
names are valid. Annotations: ``summary``, ``description`` (with the triggering values),
``count``, ``dashboard_url``, ``grafana_url``, ``runbook_url`` where configured.

A firing or acknowledged alert ends ``firing_ttl_s`` after it was sent (the sink sends it
again before that); a resolved one ends at its resolution (never later than now).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sentio_iot.settings.alert_delivery import AlertmanagerSinkSettings
from sentio_iot.sinks.alert_fields import Defaults, iso_time, site_of, tenant_of

RESOLVED = "RESOLVED"
OWN_LABELS = ("alertname", "device", "severity", "tenant", "site", "alert_id", "sentio")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
GRAFANA_DEVICE_PATH = "/d/sentio-device?var-device={device}"

Labels = tuple[tuple[str, str], ...]  # sorted: hashable, equal for equal label sets


@dataclass(frozen=True)
class Linking:
    """What every alert's labels and links need besides the record itself."""

    pipeline: str  # the ``sentio`` label
    defaults: Defaults
    settings: AlertmanagerSinkSettings


def pipeline_label(topic_prefix: str) -> str:
    return topic_prefix.rstrip(".") or "sentio"


def labels(record: Mapping[str, Any], linking: Linking) -> Labels:
    own = {
        "alertname": str(record["type"]),
        "device": str(record["device_id"]),
        "severity": str(record["severity"]).lower(),
        "tenant": tenant_of(record, linking.defaults),
        "site": site_of(record, linking.defaults),
        "alert_id": str(record["alert_id"]),
        "sentio": linking.pipeline,
    }
    for name, value in (record.get("labels") or {}).items():
        if LABEL_NAME.match(str(name)) and name not in own and value:
            own[str(name)] = str(value)
    return tuple(sorted((k, v) for k, v in own.items() if v))


def description(record: Mapping[str, Any]) -> str:
    """The message and the values that triggered it, e.g. ``... (metric=temp, value=56)``."""
    message = str(record.get("message") or f"{record['device_id']} {record['type']}")
    details = record.get("details") or {}
    if not details:
        return message
    values = ", ".join(f"{k}={v}" for k, v in sorted(details.items()))
    return f"{message} ({values})"


def links(record: Mapping[str, Any], linking: Linking) -> dict[str, str]:
    settings, defaults = linking.settings, linking.defaults
    fields = {
        "device_id": str(record["device_id"]),
        "type": str(record["type"]),
        "tenant": tenant_of(record, defaults),
        "site": site_of(record, defaults),
    }
    quoted = {k: quote(v, safe="") for k, v in fields.items()}
    out: dict[str, str] = {}
    if settings.grafana_url:
        path = GRAFANA_DEVICE_PATH.format(device=quoted["device_id"])
        out["grafana_url"] = settings.grafana_url.rstrip("/") + path
    if settings.dashboard_url:
        out["dashboard_url"] = settings.dashboard_url.format(**quoted)
    if settings.runbook_url:
        out["runbook_url"] = settings.runbook_url.format(**quoted)
    return out


def annotations_of(record: Mapping[str, Any], linking: Linking) -> dict[str, str]:
    out = {
        "summary": str(record.get("message") or f"{record['device_id']} {record['type']}"),
        "description": description(record),
        "count": str(record.get("count", 1)),
        "sentio_status": str(record["status"]),
    }
    out.update(links(record, linking))
    return out


def postable(
    record: Mapping[str, Any], linking: Linking, now_us: int, label_set: Labels | None = None
) -> dict[str, Any]:
    """The alert for ``POST /api/v2/alerts``; ``label_set`` overrides the labels (a retired set)."""
    if str(record["status"]) == RESOLVED or label_set is not None:
        ends = min(int(record.get("end_ts") or now_us), now_us)
    else:
        ends = now_us + int(linking.settings.firing_ttl_s * 1_000_000)
    starts = min(int(record["start_ts"]), ends)
    note = annotations_of(record, linking)
    return {
        "labels": dict(label_set if label_set is not None else labels(record, linking)),
        "annotations": note,
        "startsAt": iso_time(starts),
        "endsAt": iso_time(ends),
        "generatorURL": note.get("grafana_url") or note.get("dashboard_url") or "",
    }


def resolved(label_set: Labels, now_us: int) -> dict[str, Any]:
    """An alert Alertmanager holds that Sentio no longer has open: it ends now."""
    # startsAt is needed: Alertmanager would take its own now, later than endsAt: invalid.
    return {
        "labels": dict(label_set),
        "startsAt": iso_time(now_us - 1_000_000),
        "endsAt": iso_time(now_us),
    }
