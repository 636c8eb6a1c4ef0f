"""Device state: last values, learned cadence, OFFLINE after silence, ONLINE on return."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastavro.validation import validate

from sentio_iot.records import EventKind
from sentio_iot.schemas import parsed_schema
from sentio_iot.streams.device_state import DeviceState, DeviceStateTracker

S = 1_000_000
T0 = 1_700_000_000 * S


def reading(ts: int, device: str = "pump-1", **values: float | None) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": ts,
        "metrics": [
            {
                "name": k,
                "value": v,
                "text": None if v is not None else "n/a",
                "unit": "degC",
                "quality": "GOOD",
            }
            for k, v in values.items()
        ],
        "labels": {"kind": "pump"},
        "source": "modbus",
        "seq": 0,
    }


def test_fixed_timeout_offline_then_online_once() -> None:
    tracker = DeviceStateTracker(offline_after_s=30)
    state, event = tracker.observe(None, reading(T0, temp=20.5), heard_us=T0, partition=2)
    assert event is None and state.online and state.partition == 2
    assert tracker.check(state, T0 + 30 * S) is None  # exactly the timeout: still online
    offline = tracker.check(state, T0 + 31 * S)
    assert offline is not None and offline.kind is EventKind.OFFLINE
    assert offline.message == "pump-1 OFFLINE: no reading for 31 s"
    assert offline.ts_us == T0 + 31 * S
    assert offline.details["timeout_s"] == "30.000" and offline.labels == {"kind": "pump"}
    assert tracker.check(state, T0 + 60 * S) is None  # reported once
    state, online = tracker.observe(state, reading(T0 + 70 * S, temp=21.0), T0 + 70 * S, 2)
    assert online is not None and online.kind is EventKind.ONLINE
    assert online.message == "pump-1 ONLINE: reading again after 70 s"
    assert state.online and state.values == {"temp": 21.0}
    state, again = tracker.observe(state, reading(T0 + 71 * S, temp=22.0), T0 + 71 * S, 2)
    assert again is None


def test_learned_interval_has_a_floor_and_follows_the_cadence() -> None:
    tracker = DeviceStateTracker(offline_factor=3, offline_floor_s=30)
    state, _ = tracker.observe(None, reading(T0, temp=1.0), T0, 0)
    assert tracker.timeout_us(state) == 90 * S  # no gap yet: factor x floor
    for i in range(1, 4):
        state, _ = tracker.observe(state, reading(T0 + i * 60 * S, temp=1.0), T0 + i * 60 * S, 0)
    assert state.interval_us == 60 * S
    assert tracker.timeout_us(state) == 180 * S
    fast, _ = tracker.observe(None, reading(T0, "fast", temp=1.0), T0, 0)
    fast, _ = tracker.observe(fast, reading(T0 + S, "fast", temp=1.0), T0 + S, 0)
    assert tracker.timeout_us(fast) == 30 * S  # 3 x 1 s is below the floor
    # the weighted mean moves 20 % toward a new gap
    state, _ = tracker.observe(state, reading(T0 + 4 * 60 * S + 60 * S, temp=1.0), T0 + 300 * S, 0)
    assert state.interval_us == pytest.approx(72 * S)


def test_values_keep_the_newest_reading_and_text() -> None:
    tracker = DeviceStateTracker(offline_after_s=10)
    state, _ = tracker.observe(None, reading(T0 + 5 * S, temp=5.0, mode=None), T0 + 5 * S, 1)
    assert state.values == {"temp": 5.0, "mode": "n/a"}
    state, _ = tracker.observe(state, reading(T0, temp=1.0), T0 + 6 * S, 1)  # older reading
    assert state.values["temp"] == 5.0 and state.last_seen_us == T0 + 5 * S
    assert state.last_heard_us == T0 + 6 * S  # but it was heard: not silent


def test_state_round_trips_through_json_and_events_fit_the_schema() -> None:
    tracker = DeviceStateTracker(offline_after_s=1)
    state, _ = tracker.observe(None, reading(T0, temp=1.5), T0, 4)
    state, _ = tracker.observe(state, reading(T0 + S, temp=2.5), T0 + S, 4)
    event = tracker.check(state, T0 + 5 * S)
    assert event is not None
    assert validate(event.to_record(), parsed_schema("DeviceEvent"), raise_errors=True)
    again = DeviceState.from_state(json.loads(json.dumps(state.to_state())))
    assert again == state and not again.online


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        DeviceStateTracker(offline_after_s=0)
    with pytest.raises(ValueError):
        DeviceStateTracker(offline_factor=0.5)
