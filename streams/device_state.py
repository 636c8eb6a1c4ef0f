"""Device state: last value of every metric, last-seen time, online/offline. Pure, no Kafka.

:meth:`DeviceStateTracker.observe` folds a reading into a device's :class:`DeviceState` and
returns an ONLINE event when the device comes back from OFFLINE; :meth:`DeviceStateTracker.check`
returns an OFFLINE event for a device silent for longer than its timeout.

Which clock
-----------
Silence is measured on the WALL clock: a silent device produces no event time, so only the
wall clock can tell that it stopped. "Heard" is when its last reading was published (the
Kafka message timestamp, the producer's clock), not the device's own timestamp, so a device
whose clock is off is not reported offline for it. Its expected interval, on the other hand,
is learned from its own reading timestamps (its cadence), which no transport delay distorts.

Timeout: ``offline_after_s`` when set; otherwise ``offline_factor`` x the learned interval
(an exponentially weighted mean of the gaps between readings), at least ``offline_floor_s``.
Until a second reading gives a first gap, ``offline_factor`` x ``offline_floor_s`` applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.records import DeviceEvent, EventKind

_US = 1_000_000
INTERVAL_WEIGHT = 0.2  # weight of the newest gap in the learned interval
SOURCE = "streams"


@dataclass(slots=True)
class DeviceState:
    """What is known about one device; ``to_state()`` / ``from_state()`` for the table."""

    device_id: str
    partition: int
    last_seen_us: int = 0  # event time of the newest reading (the device's clock)
    last_heard_us: int = 0  # when the newest reading was published (message timestamp)
    interval_us: float | None = None  # learned gap between readings (event time)
    online: bool = True
    values: dict[str, float | str | None] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def to_state(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "partition": self.partition,
            "last_seen_us": self.last_seen_us,
            "last_heard_us": self.last_heard_us,
            "interval_us": self.interval_us,
            "online": self.online,
            "values": dict(self.values),
            "units": dict(self.units),
            "labels": dict(self.labels),
            "source": self.source,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DeviceState:
        interval = state["interval_us"]
        return cls(
            device_id=str(state["device_id"]),
            partition=int(state["partition"]),
            last_seen_us=int(state["last_seen_us"]),
            last_heard_us=int(state["last_heard_us"]),
            interval_us=None if interval is None else float(interval),
            online=bool(state["online"]),
            values=dict(state["values"]),
            units={str(k): str(v) for k, v in state["units"].items()},
            labels={str(k): str(v) for k, v in state["labels"].items()},
            source=str(state["source"]),
        )


class DeviceStateTracker:
    """The online/offline rules; holds only settings, the state is passed in and out."""

    def __init__(
        self,
        offline_after_s: float | None = None,
        offline_factor: float = 3.0,
        offline_floor_s: float = 30.0,
    ) -> None:
        if offline_after_s is not None and offline_after_s <= 0:
            raise ValueError(f"offline_after_s must be > 0, got {offline_after_s!r}")
        if offline_factor < 1 or offline_floor_s <= 0:
            raise ValueError("offline_factor must be >= 1 and offline_floor_s > 0")
        self.offline_after_s = offline_after_s
        self.offline_factor = offline_factor
        self.offline_floor_s = offline_floor_s

    def timeout_us(self, state: DeviceState) -> int:
        """How long the device may stay silent before it is OFFLINE."""
        if self.offline_after_s is not None:
            return round(self.offline_after_s * _US)
        floor = self.offline_floor_s * _US
        if state.interval_us is None:
            return round(self.offline_factor * floor)
        return round(max(floor, self.offline_factor * state.interval_us))

    def observe(
        self, state: DeviceState | None, reading: dict[str, Any], heard_us: int, partition: int
    ) -> tuple[DeviceState, DeviceEvent | None]:
        """Fold an Avro Reading dict in; the ONLINE event when the device was OFFLINE."""
        device_id = str(reading["device_id"])
        ts = int(reading["ts"])
        if state is None:
            state = DeviceState(device_id, partition)
        elif ts > state.last_seen_us and state.last_seen_us:
            gap = float(ts - state.last_seen_us)
            previous = state.interval_us
            state.interval_us = (
                gap if previous is None else previous + INTERVAL_WEIGHT * (gap - previous)
            )
        state.partition = partition
        if ts >= state.last_seen_us:
            state.last_seen_us = ts
            for metric in reading["metrics"]:
                value = metric["value"]
                if value is None or (isinstance(value, float) and not math.isfinite(value)):
                    value = metric["text"]
                state.values[metric["name"]] = value
                if metric["unit"]:
                    state.units[metric["name"]] = metric["unit"]
            state.labels = dict(reading["labels"])
            state.source = str(reading["source"])
        event = None
        if not state.online:
            silent_s = (heard_us - state.last_heard_us) / _US
            event = DeviceEvent(
                device_id,
                heard_us,
                EventKind.ONLINE,
                f"{device_id} ONLINE: reading again after {silent_s:.0f} s",
                SOURCE,
                {"silent_s": f"{silent_s:.3f}", "reading_source": state.source},
                dict(state.labels),
            )
            state.online = True
        state.last_heard_us = max(state.last_heard_us, heard_us)
        return state, event

    def check(self, state: DeviceState, now_us: int) -> DeviceEvent | None:
        """The OFFLINE event when ``state``'s device has been silent too long at ``now_us``."""
        if not state.online:
            return None
        timeout = self.timeout_us(state)
        silent = now_us - state.last_heard_us
        if silent <= timeout:
            return None
        state.online = False
        return DeviceEvent(
            state.device_id,
            now_us,
            EventKind.OFFLINE,
            f"{state.device_id} OFFLINE: no reading for {silent / _US:.0f} s",
            SOURCE,
            {
                "silent_s": f"{silent / _US:.3f}",
                "timeout_s": f"{timeout / _US:.3f}",
                "last_seen_us": str(state.last_seen_us),
                "reading_source": state.source,
            },
            dict(state.labels),
        )
