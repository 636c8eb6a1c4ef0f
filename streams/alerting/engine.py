"""The alert engine: inputs (anomalies, RUL predictions, device events, operator commands and
clock ticks) in, Alert records out, one :class:`Slot` per (device, type) as its whole state.

The caller (the alerts agent, or a test) loads the slot of the input's key, calls one
``on_*`` method with the wall time the input was heard, stores ``slot.to_state()`` back (or
drops the key when :attr:`Slot.idle`) and sends what was returned. Event time drives every
rule; a tick moves a slot's clock on at wall speed from its last input
(:meth:`Slot.clock_at`), so quiet periods and ``for_s`` end even when no input comes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sentio_iot.settings.alerts import AlertSettings
from sentio_iot.streams.alerting.lifecycle import AlertRecord, Lifecycle, S, Slot
from sentio_iot.streams.alerting.rules import (
    ANOMALY,
    DEVICE_OFFLINE,
    RUL_LOW,
    Verdict,
    anomaly_verdict,
    offline_verdict,
    rul_verdict,
)

log = logging.getLogger(__name__)

ACK, CLEAR = "ACK", "CLEAR"
HOLDING = {ANOMALY: False, RUL_LOW: True, DEVICE_OFFLINE: True}


class AlertEngine:
    """The rules of :class:`AlertSettings` applied to slots; pure, no I/O, no clock."""

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.lifecycles = {
            ANOMALY: Lifecycle(settings.anomaly),
            RUL_LOW: Lifecycle(settings.rul_low),
            DEVICE_OFFLINE: Lifecycle(settings.device_offline),
        }

    @staticmethod
    def new_slot(device_id: str, alert_type: str, partition: int = 0) -> Slot:
        return Slot(device_id, alert_type, partition)

    def on_anomaly(self, slot: Slot, anomaly: Mapping[str, Any], wall_us: int) -> list[AlertRecord]:
        return self._apply(
            slot, anomaly_verdict(self.settings.anomaly, anomaly), anomaly["ts"], wall_us
        )

    def on_rul(self, slot: Slot, prediction: Mapping[str, Any], wall_us: int) -> list[AlertRecord]:
        verdict = rul_verdict(self.settings.rul_low, prediction)
        return self._apply(slot, verdict, prediction["ts"], wall_us)

    def on_device_event(
        self, slot: Slot, event: Mapping[str, Any], wall_us: int
    ) -> list[AlertRecord]:
        verdict = offline_verdict(self.settings.device_offline, event)
        return self._apply(slot, verdict, event["ts"], wall_us)

    def on_command(self, slot: Slot, command: Mapping[str, Any]) -> list[AlertRecord]:
        """An operator's AlertCommand: ACK or CLEAR (a manual resolve) of the open alert."""
        lifecycle = self.lifecycles.get(slot.type)
        if lifecycle is None:
            return []
        if command["action"] == ACK:
            return lifecycle.ack(
                slot, command["ts"], command.get("alert_id"), command.get("user") or ""
            )
        if command["action"] == CLEAR and slot.alert is not None:
            wanted = command.get("alert_id")
            if not wanted or wanted == slot.alert.alert_id:
                return lifecycle.clear(slot, command["ts"], command.get("user") or "")
        return []

    def on_tick(self, slot: Slot, wall_us: int) -> list[AlertRecord]:
        """Wall time passed with no input for the slot: check the timed transitions."""
        now = slot.clock_at(wall_us)
        slot.observe_time(now, wall_us)
        return self._timed(slot, now)

    def _apply(self, slot: Slot, verdict: Verdict, ts: int, wall_us: int) -> list[AlertRecord]:
        now = slot.observe_time(ts, wall_us)
        out = self._timed(slot, now)
        lifecycle = self.lifecycles[slot.type]
        if verdict.hit is not None:
            out += lifecycle.hit(slot, verdict.hit, holding=HOLDING[slot.type])
        elif verdict.clear_ts is not None:
            out += lifecycle.clear(slot, verdict.clear_ts)
        return out

    def _timed(self, slot: Slot, now: int) -> list[AlertRecord]:
        lifecycle = self.lifecycles[slot.type]
        out: list[AlertRecord] = []
        if slot.type == ANOMALY:
            quiet = int(self.settings.anomaly.resolve_after_s * S)
            if slot.alert is not None and now - slot.alert.last_hit_us >= quiet:
                out += lifecycle.clear(slot, slot.alert.last_hit_us + quiet)
            window = int(self.settings.anomaly.window_s * S)
            if slot.alert is None and slot.hits and now - slot.hits[-1] >= window:
                lifecycle.clear(slot, now)  # pending hits too old to count: forget them
        out += lifecycle.advance(slot, now)
        return out
