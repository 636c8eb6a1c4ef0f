"""The alert engine on event time: rules, pending progress, suppression, life cycle, ack."""

from __future__ import annotations

import json
from typing import Any

import fastavro
import pytest

from sentio_iot.cli.alerts_cmd import command_record, latest_per_key
from sentio_iot.schemas import parsed_schema
from sentio_iot.settings.alerts import AlertSettings
from sentio_iot.streams.alerting.engine import AlertEngine
from sentio_iot.streams.alerting.lifecycle import Slot, slot_key

S = 1_000_000
T0 = 1_700_000_000 * S
LABELS = {"kind": "pump"}


def engine(**sections: Any) -> AlertEngine:
    return AlertEngine(AlertSettings.model_validate(sections))


def anomaly(
    t_s: float, metric: str = "temp", value: float = 50.0, score: float = 0.97
) -> dict[str, Any]:
    return {
        "device_id": "pump-1",
        "metric": metric,
        "ts": T0 + int(t_s * S),
        "value": value,
        "score": score,
        "threshold": 0.9,
        "expected": 10.0,
        "lower": 9.0,
        "upper": 11.0,
        "detector": "robust_zscore",
        "detector_version": "1-abcdef12",
        "labels": LABELS,
    }


def rul(t_s: float, value: float) -> dict[str, Any]:
    return {
        "device_id": "pump-1",
        "ts": T0 + int(t_s * S),
        "rul": value,
        "rul_unit": "cycles",
        "lower": None,
        "upper": None,
        "model_name": "plant_pump",
        "model_version": "3",
        "window_size": 30,
        "labels": LABELS,
    }


def event(t_s: float, kind: str) -> dict[str, Any]:
    return {
        "device_id": "pump-1",
        "ts": T0 + int(t_s * S),
        "kind": kind,
        "message": "no reading for 30 s" if kind == "OFFLINE" else "",
        "source": "streams.device_state",
        "details": {},
        "labels": LABELS,
    }


def at(t_s: float) -> int:
    return T0 + int(t_s * S)


def summary(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["status"], a["severity"], a["count"]) for a in alerts]


def test_n_anomalies_in_the_window_fire_one_alert_then_repeats_are_suppressed() -> None:
    eng = engine(anomaly={"repeat": 3, "window_s": 60, "suppress_s": 120, "resolve_after_s": 300})
    slot = eng.new_slot("pump-1", "anomaly", partition=2)
    assert eng.on_anomaly(slot, anomaly(0), at(0)) == []
    assert eng.on_anomaly(slot, anomaly(10, metric="vibration"), at(10)) == []
    fired = eng.on_anomaly(slot, anomaly(20), at(20))
    assert summary(fired) == [("FIRING", "MINOR", 3)]
    alert = fired[0]
    assert alert["alert_id"] == f"pump-1/anomaly/{at(20)}"
    assert (alert["device_id"], alert["type"], alert["start_ts"]) == ("pump-1", "anomaly", at(20))
    assert (alert["end_ts"], alert["ack_ts"]) == (None, None)
    assert alert["message"] == "pump-1 anomaly: temp=50 (score 0.97)"
    assert alert["details"] == {
        "metric": "temp",
        "value": "50",
        "score": "0.970",
        "threshold": "0.9",
        "detector": "robust_zscore",
        "expected": "10",
    }
    assert alert["labels"] == LABELS
    # repeats within suppress_s only count; a tick after it sends the count once
    assert eng.on_anomaly(slot, anomaly(30), at(30)) == []
    assert eng.on_anomaly(slot, anomaly(40), at(40)) == []
    assert eng.on_tick(slot, at(100)) == []
    assert summary(eng.on_tick(slot, at(140))) == [("FIRING", "MINOR", 5)]
    assert eng.on_tick(slot, at(200)) == []
    # quiet for resolve_after_s after the last anomaly (40 s): resolved at 340 s
    resolved = eng.on_tick(slot, at(345))
    assert summary(resolved) == [("RESOLVED", "MINOR", 5)]
    assert resolved[0]["end_ts"] == at(340) and resolved[0]["alert_id"] == alert["alert_id"]
    assert slot.idle and eng.on_tick(slot, at(400)) == []


def test_anomalies_spread_wider_than_the_window_never_fire() -> None:
    eng = engine(anomaly={"repeat": 3, "window_s": 60})
    slot = eng.new_slot("pump-1", "anomaly")
    out = [a for t in (0, 50, 100, 150, 200) for a in eng.on_anomaly(slot, anomaly(t), at(t))]
    assert out == []
    assert slot.hits == [at(150), at(200)]
    assert eng.on_tick(slot, at(300)) == [] and slot.idle  # stale pending hits forgotten


def test_low_scores_are_ignored_and_a_disabled_rule_never_fires() -> None:
    eng = engine(anomaly={"repeat": 1, "min_score": 0.95})
    slot = eng.new_slot("pump-1", "anomaly")
    assert eng.on_anomaly(slot, anomaly(0, score=0.94), at(0)) == []
    assert summary(eng.on_anomaly(slot, anomaly(1, score=0.96), at(1))) == [("FIRING", "MINOR", 1)]
    off = engine(anomaly={"repeat": 1, "enabled": False})
    assert off.on_anomaly(off.new_slot("pump-1", "anomaly"), anomaly(0), at(0)) == []


def test_offline_fires_at_once_and_online_resolves() -> None:
    eng = engine()
    slot = eng.new_slot("pump-1", "device_offline")
    fired = eng.on_device_event(slot, event(0, "OFFLINE"), at(0))
    assert summary(fired) == [("FIRING", "MAJOR", 1)]
    assert fired[0]["message"] == "pump-1 OFFLINE: no reading for 30 s"
    assert fired[0]["details"] == {"source": "streams.device_state"}
    assert eng.on_device_event(slot, event(5, "ERROR"), at(5)) == []
    resolved = eng.on_device_event(slot, event(90, "ONLINE"), at(90))
    assert summary(resolved) == [("RESOLVED", "MAJOR", 1)]
    assert (resolved[0]["start_ts"], resolved[0]["end_ts"]) == (at(0), at(90))
    assert eng.on_device_event(slot, event(95, "ONLINE"), at(95)) == []


def test_offline_for_s_must_pass_before_firing_and_survives_a_restart() -> None:
    eng = engine(device_offline={"for_s": 60})
    slot = eng.new_slot("pump-1", "device_offline", partition=1)
    assert eng.on_device_event(slot, event(0, "OFFLINE"), at(0)) == []
    assert eng.on_tick(slot, at(30)) == []
    assert eng.on_device_event(slot, event(40, "ONLINE"), at(40)) == []  # back in time
    assert eng.on_device_event(slot, event(100, "OFFLINE"), at(100)) == []
    assert eng.on_tick(slot, at(130)) == []
    restored = Slot.from_state(json.loads(json.dumps(slot.to_state())))  # a worker restart
    assert restored == slot and restored.key == slot_key("pump-1", "device_offline")
    fired = eng.on_tick(restored, at(161))
    assert summary(fired) == [("FIRING", "MAJOR", 1)]
    assert fired[0]["start_ts"] == at(161)
    assert fired[0]["message"] == "pump-1 OFFLINE: no reading for 30 s"


def test_ticks_run_event_time_on_at_wall_speed_from_the_last_input() -> None:
    eng = engine(device_offline={"for_s": 60})
    slot = eng.new_slot("pump-1", "device_offline")
    wall = 1_800_000_000 * S  # replayed data: event time far behind the wall clock
    assert eng.on_device_event(slot, event(0, "OFFLINE"), wall) == []
    assert eng.on_tick(slot, wall + 59 * S) == []
    assert [a["start_ts"] for a in eng.on_tick(slot, wall + 61 * S)] == [at(61)]


def test_rul_low_fires_escalates_holds_in_the_hysteresis_and_resolves() -> None:
    eng = engine(rul_low={"repeat": 2, "below": 50, "critical_below": 20, "hysteresis": 10})
    slot = eng.new_slot("pump-1", "rul_low")
    assert eng.on_rul(slot, rul(0, 80), at(0)) == []
    assert eng.on_rul(slot, rul(10, 45), at(10)) == []
    fired = eng.on_rul(slot, rul(20, 40), at(20))
    assert summary(fired) == [("FIRING", "MAJOR", 2)]
    assert fired[0]["message"] == "pump-1 remaining useful life 40 cycles < 50"
    assert fired[0]["details"] == {
        "rul": "40",
        "rul_unit": "cycles",
        "below": "50",
        "model": "plant_pump:3",
    }
    assert eng.on_rul(slot, rul(30, 38), at(30)) == []  # suppressed repeat
    assert summary(eng.on_rul(slot, rul(40, 15), at(40))) == [("FIRING", "CRITICAL", 4)]
    assert eng.on_rul(slot, rul(50, 55), at(50)) == []  # within the hysteresis: still open
    resolved = eng.on_rul(slot, rul(60, 61), at(60))
    assert summary(resolved) == [("RESOLVED", "CRITICAL", 4)]
    assert resolved[0]["end_ts"] == at(60)


def test_a_rul_dip_that_recovers_before_repeat_does_not_fire() -> None:
    eng = engine(rul_low={"repeat": 2, "below": 50, "critical_below": 20, "hysteresis": 10})
    slot = eng.new_slot("pump-1", "rul_low")
    assert eng.on_rul(slot, rul(0, 45), at(0)) == []
    assert eng.on_rul(slot, rul(10, 70), at(10)) == []  # above below + hysteresis: clears
    assert eng.on_rul(slot, rul(20, 45), at(20)) == []
    assert slot.hits == [at(20)]


def test_ack_then_repeat_keeps_acknowledged_and_clear_resolves() -> None:
    eng = engine(anomaly={"repeat": 1, "suppress_s": 0})
    slot = eng.new_slot("pump-1", "anomaly")
    assert eng.on_command(slot, {"action": "ACK", "ts": at(0), "alert_id": None}) == []
    alert_id = eng.on_anomaly(slot, anomaly(0), at(0))[0]["alert_id"]
    wrong = {"action": "ACK", "ts": at(5), "alert_id": "pump-1/anomaly/1"}
    assert eng.on_command(slot, wrong) == []
    acked = eng.on_command(slot, {"action": "ACK", "ts": at(6), "alert_id": alert_id})
    assert summary(acked) == [("ACKNOWLEDGED", "MINOR", 1)] and acked[0]["ack_ts"] == at(6)
    assert eng.on_command(slot, {"action": "ACK", "ts": at(7), "alert_id": None}) == []
    again = eng.on_anomaly(slot, anomaly(8), at(8))
    assert summary(again) == [("ACKNOWLEDGED", "MINOR", 2)] and again[0]["ack_ts"] == at(6)
    cleared = eng.on_command(slot, {"action": "CLEAR", "ts": at(9), "alert_id": None})
    assert summary(cleared) == [("RESOLVED", "MINOR", 2)]
    assert (cleared[0]["end_ts"], cleared[0]["ack_ts"]) == (at(9), at(6))
    fresh = eng.on_anomaly(slot, anomaly(10), at(10))  # a new occurrence, a new id
    assert summary(fresh) == [("FIRING", "MINOR", 1)] and fresh[0]["alert_id"] != alert_id


def test_every_record_is_a_valid_alert() -> None:
    eng = engine(anomaly={"repeat": 1})
    slot = eng.new_slot("pump-1", "anomaly")
    records = eng.on_anomaly(slot, anomaly(0), at(0))
    records += eng.on_command(slot, {"action": "ACK", "ts": at(1), "alert_id": None})
    records += eng.on_tick(slot, at(2000))
    assert summary(records) == [
        ("FIRING", "MINOR", 1),
        ("ACKNOWLEDGED", "MINOR", 1),
        ("RESOLVED", "MINOR", 1),
    ]
    for record in records:
        assert fastavro.validate(record, parsed_schema("Alert"), raise_errors=True)


def test_invalid_rule_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"anomaly\n  Value error, for_s \(600\) must not exceed"):
        AlertSettings.model_validate({"anomaly": {"for_s": 600, "window_s": 60}})
    with pytest.raises(ValueError, match=r"rul_low.critical_below \(60\) must not exceed"):
        AlertSettings.model_validate({"rul_low": {"critical_below": 60}})
    with pytest.raises(ValueError, match=r"device_offline.severity\n  Input should be 'CRITICAL'"):
        AlertSettings.model_validate({"device_offline": {"severity": "LOUD"}})


def test_ack_command_record_is_a_valid_alert_command() -> None:
    command = command_record("pump-1", "anomaly", "ACK", alert_id="x", comment="on it", user="op")
    assert fastavro.validate(command, parsed_schema("AlertCommand"), raise_errors=True)
    assert (command["device_id"], command["type"], command["action"]) == (
        "pump-1",
        "anomaly",
        "ACK",
    )
    assert (command["alert_id"], command["user"], command["comment"]) == ("x", "op", "on it")
    assert len(command["command_id"]) == 32


def test_alerts_list_keeps_the_latest_state_per_key() -> None:
    states = [
        {"device_id": "pump-1", "type": "anomaly", "status": "FIRING"},
        {"device_id": "pump-2", "type": "anomaly", "status": "FIRING"},
        {"device_id": "pump-1", "type": "anomaly", "status": "RESOLVED"},
        {"device_id": "pump-1", "type": "rul_low", "status": "ACKNOWLEDGED"},
    ]
    latest = latest_per_key(states)
    assert {key: a["status"] for key, a in latest.items()} == {
        "pump-1/anomaly": "RESOLVED",
        "pump-2/anomaly": "FIRING",
        "pump-1/rul_low": "ACKNOWLEDGED",
    }
