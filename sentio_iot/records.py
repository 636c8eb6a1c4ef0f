"""Domain records shared by every stage, free of Avro: ``to_record()`` gives the Avro dict.

Field names follow the schemas in ``schemas/avro`` exactly; timestamps are integer
microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


def now_us() -> int:
    """Wall-clock time in integer microseconds since the epoch."""
    return time.time_ns() // 1000


class Quality(StrEnum):
    GOOD = "GOOD"
    UNCERTAIN = "UNCERTAIN"
    BAD = "BAD"


class EventKind(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    EXCEPTION = "EXCEPTION"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    DISCOVERED = "DISCOVERED"
    REMOVED = "REMOVED"
    INFO = "INFO"


@dataclass(slots=True, frozen=True)
class Metric:
    """One named value in a reading; ``text`` carries non-numeric values (STRING registers)."""

    name: str
    value: float | None
    unit: str | None = None
    quality: Quality = Quality.GOOD
    text: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "text": self.text,
            "unit": self.unit,
            "quality": self.quality.value,
        }


@dataclass(slots=True)
class Reading:
    """One device's sample: one or more metrics taken together."""

    device_id: str
    ts_us: int
    metrics: list[Metric]
    source: str
    labels: dict[str, str] = field(default_factory=dict)
    seq: int = 0

    def to_record(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "ts": self.ts_us,
            "metrics": [m.to_record() for m in self.metrics],
            "labels": self.labels,
            "source": self.source,
            "seq": self.seq,
        }


@dataclass(slots=True)
class DeviceEvent:
    """Something that happened to a device: online/offline, timeout, exception, discovery."""

    device_id: str
    ts_us: int
    kind: EventKind
    message: str
    source: str
    details: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "ts": self.ts_us,
            "kind": self.kind.value,
            "message": self.message,
            "source": self.source,
            "details": self.details,
            "labels": self.labels,
        }
