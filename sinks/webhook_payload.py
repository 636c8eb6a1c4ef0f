"""The JSON body the webhook sink POSTs for one alert state change (format version 1).

::

    {"version": "1", "event": "alert.firing", "delivery_id": "sentio.alerts/0/42",
     "alert": {"alert_id": ..., "key": "pump-1/anomaly", "device_id": ..., "type": ...,
               "severity": "MAJOR", "status": "FIRING", "started_at": "...Z",
               "ended_at": null, "acknowledged_at": null, "changed_at": "...Z", "count": 3,
               "message": ..., "details": {...}, "labels": {...}, "tenant": ..., "site": ...}}

``delivery_id`` names the Kafka record (topic/partition/offset): the same state change always
has the same id, so a receiver can drop the repeats that retries may bring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from sentio_iot.sinks.alert_fields import (
    Defaults,
    alert_time_us,
    iso_time,
    key_of,
    site_of,
    tenant_of,
)
from sentio_iot.sinks.writer import SinkRecord

VERSION = "1"


def delivery_id(record: SinkRecord) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


def _time(value: Any) -> str | None:
    return None if value is None else iso_time(int(value))


def alert_event(record: SinkRecord, defaults: Defaults) -> dict[str, Any]:
    """The body of one state change; KeyError/TypeError/ValueError when it breaks the contract."""
    value = record.value
    if not isinstance(value, Mapping):
        raise TypeError(f"{record.catalog_name} records are Avro, got raw bytes")
    status = str(value["status"])
    alert = {
        "alert_id": str(value["alert_id"]),
        "key": key_of(value),
        "device_id": str(value["device_id"]),
        "type": str(value["type"]),
        "severity": str(value["severity"]),
        "status": status,
        "started_at": iso_time(int(value["start_ts"])),
        "ended_at": _time(value.get("end_ts")),
        "acknowledged_at": _time(value.get("ack_ts")),
        "changed_at": iso_time(alert_time_us(value, record.timestamp_ms)),
        "count": int(value.get("count", 1)),
        "message": str(value.get("message", "")),
        "details": {str(k): str(v) for k, v in (value.get("details") or {}).items()},
        "labels": {str(k): str(v) for k, v in (value.get("labels") or {}).items()},
        "tenant": tenant_of(value, defaults),
        "site": site_of(value, defaults),
    }
    return {
        "version": VERSION,
        "event": f"alert.{status.lower()}",
        "delivery_id": delivery_id(record),
        "alert": alert,
    }


def body(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
