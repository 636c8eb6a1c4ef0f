"""The audit trail of alert commands: the alerts agent keeps who acknowledged and who cleared
an alert (the AlertCommand's user: from the API, the verified token's name) in its details,
and `sentio alerts list` shows them."""

from __future__ import annotations

from typing import Any

from sentio_iot.cli.alerts_cmd import _message
from sentio_iot.settings.alerts import AlertSettings
from sentio_iot.streams.alerting.engine import AlertEngine

S = 1_000_000
T0 = 1_700_000_000 * S


def anomaly(ts: int) -> dict[str, Any]:
    return {
        "device_id": "pump-1",
        "metric": "temp",
        "ts": ts,
        "value": 99.0,
        "score": 0.99,
        "threshold": 0.9,
        "expected": 20.0,
        "lower": 18.0,
        "upper": 22.0,
        "detector": "novelty",
        "detector_version": "1",
        "labels": {"tenant": "acme"},
    }


def test_ack_and_clear_keep_the_users_and_the_list_shows_them() -> None:
    settings = AlertSettings.model_validate({"anomaly": {"repeat": 1, "suppress_s": 0}})
    engine = AlertEngine(settings)
    slot = engine.new_slot("pump-1", "anomaly")
    fired = engine.on_anomaly(slot, anomaly(T0), T0)
    assert fired[0]["details"].get("acked_by") is None
    acked = engine.on_command(
        slot, {"action": "ACK", "ts": T0 + S, "alert_id": None, "user": "olga"}
    )
    assert (acked[0]["status"], acked[0]["details"]["acked_by"]) == ("ACKNOWLEDGED", "olga")
    assert _message(acked[0]).endswith("[acknowledged by olga]")
    cleared = engine.on_command(
        slot, {"action": "CLEAR", "ts": T0 + 2 * S, "alert_id": None, "user": "ada"}
    )
    details = cleared[0]["details"]
    assert (cleared[0]["status"], details["acked_by"], details["cleared_by"]) == (
        "RESOLVED",
        "olga",
        "ada",
    )
    assert _message(cleared[0]).endswith("[acknowledged by olga; cleared by ada]")


def test_a_command_without_a_user_records_nobody() -> None:
    settings = AlertSettings.model_validate({"anomaly": {"repeat": 1, "suppress_s": 0}})
    engine = AlertEngine(settings)
    slot = engine.new_slot("pump-1", "anomaly")
    engine.on_anomaly(slot, anomaly(T0), T0)
    acked = engine.on_command(slot, {"action": "ACK", "ts": T0 + S, "alert_id": None})
    assert "acked_by" not in acked[0]["details"] and _message(acked[0]) == acked[0]["message"]
