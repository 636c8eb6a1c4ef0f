"""An Alert record as systems outside Sentio see it: RFC 3339 times, tenant and site filled in.

Shared by the alert deliveries (``sinks/alertmanager*.py``, ``sinks/webhook*.py``) so an alert
reads the same in a webhook body and in Alertmanager's labels and annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sentio_iot.sinks.loki_streams import Defaults, alert_time_us

__all__ = ["Defaults", "alert_time_us", "iso_time", "key_of", "site_of", "tenant_of"]


def iso_time(ts_us: int) -> str:
    """``2026-12-07T10:00:00.123456Z``: exact (no float rounding of microseconds)."""
    seconds, micros = divmod(ts_us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)
    return moment.isoformat().replace("+00:00", "Z")


def tenant_of(record: Mapping[str, Any], defaults: Defaults) -> str:
    return str((record.get("labels") or {}).get("tenant") or defaults.tenant)


def site_of(record: Mapping[str, Any], defaults: Defaults) -> str:
    return str((record.get("labels") or {}).get("site") or defaults.site)


def key_of(record: Mapping[str, Any]) -> str:
    """The alert's key on the alerts topic: ``device_id/type``."""
    return f"{record['device_id']}/{record['type']}"
