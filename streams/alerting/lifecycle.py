"""The life cycle of the alert of one (device, type): pending -> FIRING -> ACKNOWLEDGED -> RESOLVED.

One :class:`Slot` per (device, alert type) holds everything, as plain JSON (``to_state``), so
the agent keeps it in a table and a restarted worker continues with the same pending progress:

- **pending**: ``hits`` (event times the condition was seen within ``window_s``) and ``since``
  (when the condition began to hold). The alert fires when ``repeat`` hits lie within the
  window and the condition has held for ``for_s``. A *holding* condition (device offline, RUL
  low) keeps holding between inputs, so :meth:`Lifecycle.advance` can fire it when ``for_s``
  passes with no new input; an event condition (anomalies) fires only on a hit.
- **open alert**: at most one per slot. Further hits fold into it (``count`` +1) and are
  **suppressed**: a new record goes out at most every ``suppress_s``; the last unsent change is
  flushed by ``advance`` once the interval has passed. A change of severity or status goes
  out at once.
- **resolve**: :meth:`Lifecycle.clear` sends RESOLVED and empties the slot; a later hit starts
  a new occurrence with a new ``alert_id``.

Time is event time in microseconds, passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.settings.alerts import RuleSettings, Severity

S = 1_000_000
FIRING, ACKNOWLEDGED, RESOLVED = "FIRING", "ACKNOWLEDGED", "RESOLVED"
SEVERITY_RANK = {s.value: rank for rank, s in enumerate(Severity)}  # 0: most severe

AlertRecord = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hit:
    """The condition seen once: when, how bad, and what to tell the operator."""

    ts: int
    severity: str
    message: str
    details: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class OpenAlert:
    """The firing (or acknowledged) alert of a slot."""

    alert_id: str
    severity: str
    status: str
    start_ts: int
    count: int
    message: str
    details: dict[str, str]
    labels: dict[str, str]
    last_hit_us: int
    last_sent_us: int
    ack_ts: int | None = None
    unsent: bool = False


@dataclass(slots=True)
class Slot:
    """Pending progress and the open alert of one (device, type); JSON via to_state."""

    device_id: str
    type: str
    partition: int = 0
    hits: list[int] = field(default_factory=list)
    since: int | None = None
    holding: bool = False
    pending: Hit | None = None  # the latest hit while not firing: what a fire will say
    alert: OpenAlert | None = None
    clock_us: int = 0  # latest event time this slot has seen
    heard_wall_us: int = 0  # wall time when clock_us was seen

    @property
    def idle(self) -> bool:
        """Nothing pending and no open alert: the slot need not be stored."""
        return self.alert is None and not self.hits and not self.holding

    @property
    def key(self) -> str:
        return slot_key(self.device_id, self.type)

    def observe_time(self, ts: int, wall_us: int) -> int:
        """Move the slot's event clock to ``ts`` (never back); the clock now."""
        if ts >= self.clock_us:
            self.clock_us, self.heard_wall_us = ts, wall_us
        return self.clock_us

    def clock_at(self, wall_us: int) -> int:
        """Event time now, extrapolated at wall speed from the last input (for ticks)."""
        return self.clock_us + max(0, wall_us - self.heard_wall_us)

    def to_state(self) -> dict[str, Any]:
        """What ``dataclasses.asdict`` gives, built directly: asdict deep-copies field by
        field and was most of the alerts agent's store (docs/benchmarks.md)."""
        pending, alert = self.pending, self.alert
        return {
            "device_id": self.device_id,
            "type": self.type,
            "partition": self.partition,
            "hits": list(self.hits),
            "since": self.since,
            "holding": self.holding,
            "pending": None
            if pending is None
            else {
                "ts": pending.ts,
                "severity": pending.severity,
                "message": pending.message,
                "details": dict(pending.details),
                "labels": dict(pending.labels),
            },
            "alert": None
            if alert is None
            else {
                "alert_id": alert.alert_id,
                "severity": alert.severity,
                "status": alert.status,
                "start_ts": alert.start_ts,
                "count": alert.count,
                "message": alert.message,
                "details": dict(alert.details),
                "labels": dict(alert.labels),
                "last_hit_us": alert.last_hit_us,
                "last_sent_us": alert.last_sent_us,
                "ack_ts": alert.ack_ts,
                "unsent": alert.unsent,
            },
            "clock_us": self.clock_us,
            "heard_wall_us": self.heard_wall_us,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Slot:
        data = dict(state)
        alert = data.pop("alert", None)
        pending = data.pop("pending", None)
        return cls(
            **data,
            pending=None if pending is None else Hit(**pending),
            alert=None if alert is None else OpenAlert(**alert),
        )


def slot_key(device_id: str, alert_type: str) -> str:
    """The key of an alert (and of its slot): ``device_id/type``."""
    return f"{device_id}/{alert_type}"


class Lifecycle:
    """The transitions of one rule's slots; every method returns the Alert records to send."""

    def __init__(self, rule: RuleSettings) -> None:
        self.rule = rule

    def hit(self, slot: Slot, hit: Hit, *, holding: bool) -> list[AlertRecord]:
        """The condition was seen at ``hit.ts``."""
        if slot.alert is not None:
            return self._repeat(slot, slot.alert, hit)
        window_start = hit.ts - int(self.rule.window_s * S)
        slot.hits = [t for t in slot.hits if t > window_start] + [hit.ts]
        slot.hits.sort()
        if not holding:  # events: the condition has "held" since the window's first hit
            slot.since = slot.hits[0]
        elif slot.since is None:
            slot.since = hit.ts
        slot.holding = holding
        if self._ready(slot, hit.ts):
            return [self._fire(slot, hit, hit.ts)]
        slot.pending = hit
        return []

    def clear(self, slot: Slot, ts: int, user: str = "") -> list[AlertRecord]:
        """The condition no longer holds, or an operator (``user``, kept in the details as
        ``cleared_by``) cleared it: forget the pending progress, resolve the alert."""
        slot.hits, slot.since, slot.holding, slot.pending = [], None, False, None
        alert, slot.alert = slot.alert, None
        if alert is None:
            return []
        if user:
            alert.details["cleared_by"] = user
        alert.status = RESOLVED
        alert.last_sent_us = ts
        return [record(slot, alert, end_ts=ts)]

    def ack(self, slot: Slot, ts: int, alert_id: str | None, user: str = "") -> list[AlertRecord]:
        """An operator acknowledged the alert (``alert_id`` None: whichever is open); their
        name (``user``) is kept in the alert's details as ``acked_by``: the audit trail."""
        alert = slot.alert
        if alert is None or alert.status != FIRING:
            return []
        if alert_id and alert_id != alert.alert_id:
            return []
        alert.status, alert.ack_ts = ACKNOWLEDGED, ts
        if user:
            alert.details["acked_by"] = user
        return [self._send(slot, alert, ts)]

    def advance(self, slot: Slot, now: int) -> list[AlertRecord]:
        """Time passed: fire a holding condition whose for_s is over, flush a suppressed repeat."""
        alert = slot.alert
        if alert is None:
            hit = slot.pending
            if slot.holding and hit is not None and self._ready(slot, now):
                return [self._fire(slot, hit, now)]
            return []
        if alert.unsent and now - alert.last_sent_us >= self.rule.suppress_s * S:
            return [self._send(slot, alert, now)]
        return []

    def _ready(self, slot: Slot, now: int) -> bool:
        held = slot.since is not None and now - slot.since >= self.rule.for_s * S
        return held and len(slot.hits) >= self.rule.repeat

    def _fire(self, slot: Slot, hit: Hit, now: int) -> AlertRecord:
        alert = OpenAlert(
            alert_id=f"{slot.key}/{now}",
            severity=hit.severity,
            status=FIRING,
            start_ts=now,
            count=len(slot.hits),
            message=hit.message,
            details=dict(hit.details),
            labels=dict(hit.labels),
            last_hit_us=hit.ts,
            last_sent_us=now,
        )
        slot.alert = alert
        slot.hits, slot.since, slot.pending = [], None, None
        return record(slot, alert)

    def _repeat(self, slot: Slot, alert: OpenAlert, hit: Hit) -> list[AlertRecord]:
        alert.count += 1
        alert.last_hit_us = max(alert.last_hit_us, hit.ts)
        alert.message, alert.details = hit.message, dict(hit.details)
        alert.labels = dict(hit.labels) or alert.labels
        changed = hit.severity != alert.severity
        alert.severity = hit.severity
        if changed or hit.ts - alert.last_sent_us >= self.rule.suppress_s * S:
            return [self._send(slot, alert, hit.ts)]
        alert.unsent = True
        return []

    def _send(self, slot: Slot, alert: OpenAlert, now: int) -> AlertRecord:
        alert.last_sent_us, alert.unsent = max(alert.last_sent_us, now), False
        return record(slot, alert)


def record(slot: Slot, alert: OpenAlert, *, end_ts: int | None = None) -> AlertRecord:
    """The Alert record (schemas/avro/Alert.avsc) of the alert as it is now."""
    return {
        "alert_id": alert.alert_id,
        "device_id": slot.device_id,
        "type": slot.type,
        "severity": alert.severity,
        "status": alert.status,
        "start_ts": alert.start_ts,
        "end_ts": end_ts,
        "ack_ts": alert.ack_ts,
        "count": alert.count,
        "message": alert.message,
        "details": dict(alert.details),
        "labels": dict(alert.labels),
    }
