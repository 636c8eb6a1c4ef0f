"""The anomaly and alerts agents attach to a StreamApp (no broker needed to build one)."""

from __future__ import annotations

from pathlib import Path

from sentio_iot.config import SentioConfig
from sentio_iot.streams.app import StreamApp


def test_agents_declare_their_tables_topics_and_schemas(tmp_path: Path) -> None:
    config = SentioConfig.model_validate(
        {"topics": {"prefix": "x."}, "streams": {"app_id": "app", "state_dir": str(tmp_path)}}
    )
    app = StreamApp(config, agents=["anomaly", "alerts"], web_port=6199)
    assert sorted(app.faust.agents) == ["sentio.alerts", "sentio.readings"]
    assert sorted(app.faust.tables) == ["alerts", "anomaly_devices"]
    alerts_in = app.faust.agents["sentio.alerts"].channel.topics
    assert sorted(alerts_in) == [
        "app-alerts-ticks",
        "x.alert-commands",
        "x.anomalies",
        "x.device-events",
        "x.rul",
    ]
    anomaly_in = app.faust.agents["sentio.readings"].channel.topics
    assert list(anomaly_in) == ["x.readings"]
    subjects = sorted(serde.subject for serde in app._serdes.values())
    assert subjects == [
        "x.alert-commands-value",
        "x.alerts-value",
        "x.anomalies-value",
        "x.deadletter-value",
        "x.device-events-value",
        "x.readings-value",
        "x.rul-value",
    ]
