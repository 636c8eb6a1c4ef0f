"""Home Assistant sensors from Sentio records: discovery configs and states, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from sentio_iot import __version__
from sentio_iot.config import load_config
from sentio_iot.sinks.homeassistant import (
    Discovery,
    HomeAssistantWriter,
    alert_sensor,
    anomaly_sensor,
    rul_sensor,
    topic_id,
)
from sentio_iot.sinks.writer import RejectedRecords, SinkRecord

TS = 1_795_000_000_123_456  # 2026-11-18T11:06:40.123456Z
DEVICE = {
    "identifiers": ["sentio_pump-0003"],
    "name": "pump-0003",
    "manufacturer": "Sentio IoT",
    "model": "pump",
}
COMMON = {
    "availability_topic": "sentio/availability",
    "payload_available": "online",
    "payload_not_available": "offline",
    "device": DEVICE,
    "origin": {"name": "Sentio IoT", "sw_version": __version__},
}


def anomaly(**changes: Any) -> dict[str, Any]:
    return {
        "device_id": "pump-0003",
        "metric": "vibration.rms",
        "ts": TS,
        "value": 9.5,
        "score": 6.25,
        "threshold": 4.0,
        "expected": 2.0,
        "lower": None,
        "upper": None,
        "detector": "robust_zscore",
        "detector_version": "1",
        "labels": {"kind": "pump"},
        **changes,
    }


def rul(unit: str) -> dict[str, Any]:
    return {
        "device_id": "pump-0003",
        "ts": TS,
        "rul": 112.5,
        "rul_unit": unit,
        "lower": 90.0,
        "upper": None,
        "model_name": "cmapss_lstm",
        "model_version": "3",
        "window_size": 30,
        "labels": {"kind": "pump"},
    }


def alert(status: str, severity: str = "MAJOR") -> dict[str, Any]:
    return {
        "alert_id": "pump-0003/device_offline/1",
        "device_id": "pump-0003",
        "type": "device_offline",
        "severity": severity,
        "status": status,
        "start_ts": TS,
        "end_ts": None,
        "ack_ts": None,
        "count": 1,
        "message": "offline for 30 s",
        "details": {},
        "labels": {"kind": "pump"},
    }


discovery = Discovery(load_config(data={}).sinks.homeassistant)


def test_anomaly_score_sensor() -> None:
    sensor = anomaly_sensor(anomaly())
    assert discovery.config_topic(sensor) == (
        "homeassistant/sensor/pump-0003/vibration_rms_anomaly_score/config"
    )
    assert discovery.config(sensor) == {
        "name": "vibration.rms anomaly score",
        "unique_id": "sentio_pump-0003_vibration_rms_anomaly_score",
        "state_topic": "sentio/pump-0003/vibration_rms_anomaly_score/state",
        "value_template": "{{ value_json.score }}",
        "json_attributes_topic": "sentio/pump-0003/vibration_rms_anomaly_score/state",
        "state_class": "measurement",
        **COMMON,
    }
    assert sensor.state == {
        "score": 6.25,
        "value": 9.5,
        "threshold": 4.0,
        "expected": 2.0,
        "detector": "robust_zscore",
        "detector_version": "1",
        "time": "2026-11-18T11:06:40.123456Z",
    }


@pytest.mark.parametrize(
    ("unit", "extra"),
    [
        ("hours", {"unit_of_measurement": "h", "device_class": "duration"}),
        ("cycles", {"unit_of_measurement": "cycles"}),
    ],
)
def test_rul_sensor(unit: str, extra: dict[str, str]) -> None:
    sensor = rul_sensor(rul(unit))
    assert discovery.config(sensor) == {
        "name": "Remaining useful life",
        "unique_id": "sentio_pump-0003_remaining_useful_life",
        "state_topic": "sentio/pump-0003/remaining_useful_life/state",
        "value_template": "{{ value_json.rul }}",
        "json_attributes_topic": "sentio/pump-0003/remaining_useful_life/state",
        "state_class": "measurement",
        **extra,
        **COMMON,
    }
    assert sensor.state == {
        "rul": 112.5,
        "lower": 90.0,
        "model": "cmapss_lstm",
        "model_version": "3",
        "time": "2026-11-18T11:06:40.123456Z",
    }


def test_alert_sensor_is_an_enum_of_severities() -> None:
    sensor = alert_sensor(alert("FIRING"))
    assert discovery.config(sensor) == {
        "name": "device offline alert",
        "unique_id": "sentio_pump-0003_alert_device_offline",
        "state_topic": "sentio/pump-0003/alert_device_offline/state",
        "value_template": "{{ value_json.state }}",
        "json_attributes_topic": "sentio/pump-0003/alert_device_offline/state",
        "device_class": "enum",
        "options": ["ok", "critical", "major", "minor", "warning", "indeterminate"],
        **COMMON,
    }
    assert sensor.state == {
        "state": "major",
        "status": "FIRING",
        "alert_id": "pump-0003/device_offline/1",
        "severity": "MAJOR",
        "message": "offline for 30 s",
        "since": "2026-11-18T11:06:40.123456Z",
    }
    assert alert_sensor(alert("ACKNOWLEDGED", "CRITICAL")).state["state"] == "critical"
    assert alert_sensor(alert("RESOLVED")).state["state"] == "ok"


def test_ids_are_what_home_assistant_accepts_and_settings_change_topics() -> None:
    assert topic_id("hall 2/pump#3.rms") == "hall_2_pump_3_rms"
    custom = Discovery(
        load_config(
            data={
                "sinks": {
                    "homeassistant": {
                        "discovery_prefix": "ha",
                        "base_topic": "plant/sentio",
                        "expire_after_s": 600,
                    }
                }
            }
        ).sinks.homeassistant
    )
    sensor = anomaly_sensor(anomaly(device_id="hall 2/pump", labels={}))
    config = custom.config(sensor)
    assert custom.config_topic(sensor) == "ha/sensor/hall_2_pump/vibration_rms_anomaly_score/config"
    assert config["state_topic"] == "plant/sentio/hall_2_pump/vibration_rms_anomaly_score/state"
    assert config["availability_topic"] == "plant/sentio/availability"
    assert config["expire_after"] == 600
    assert config["device"] == {
        "identifiers": ["sentio_hall_2_pump"],
        "name": "hall 2/pump",
        "manufacturer": "Sentio IoT",
        "model": "device",
    }
    assert custom.status_topic == "ha/status"


async def test_records_that_fit_no_sensor_are_rejected_without_publishing() -> None:
    writer = HomeAssistantWriter(load_config(data={}))
    batch = [
        SinkRecord("t", "anomalies", 0, 0, None, {"device_id": "x"}),
        SinkRecord("t", "alerts", 0, 1, None, alert("FIRING", "SEVERE")),
        SinkRecord("t", "readings", 0, 2, None, anomaly()),
        SinkRecord("t", "rul", 0, 3, None, b"raw"),
    ]
    with pytest.raises(RejectedRecords) as rejected:
        await writer.write(batch)
    reasons = rejected.value.reasons
    assert sorted(reasons) == [0, 1, 2, 3]
    assert "KeyError('metric')" in reasons[0]
    assert "unknown severity 'SEVERE'" in reasons[1]
    assert "no sensor for records of readings" in reasons[2]
    assert "got raw bytes" in reasons[3]
