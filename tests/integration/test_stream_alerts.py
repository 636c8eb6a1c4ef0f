"""The alerts agent through `sentio stream worker` against the real Kafka: offline/online,
acknowledgement, N anomalies -> one alert with count N, pending progress across a new worker."""

from __future__ import annotations

import time
from typing import Any

from click.testing import CliRunner
from stream_worker import Received, StreamTestbed, WorkerProcess, stream_testbed_fixture  # noqa: F401

from sentio_iot.cli.alerts_cmd import latest_per_key
from sentio_iot.cli.main import cli
from sentio_iot.records import now_us

S = 1_000_000
LABELS = {"kind": "pump"}


def device_event(device: str, kind: str, ts: int) -> tuple[str, dict[str, Any]]:
    return device, {
        "device_id": device,
        "ts": ts,
        "kind": kind,
        "message": "no reading for 30 s" if kind == "OFFLINE" else "",
        "source": "streams",
        "details": {},
        "labels": LABELS,
    }


def anomaly(device: str, ts: int, value: float) -> tuple[str, dict[str, Any]]:
    return device, {
        "device_id": device,
        "metric": "temp",
        "ts": ts,
        "value": value,
        "score": 0.98,
        "threshold": 0.9,
        "expected": 10.0,
        "lower": 9.0,
        "upper": 11.0,
        "detector": "robust_zscore",
        "detector_version": "1-abcdef12",
        "labels": LABELS,
    }


def rul(device: str, ts: int, value: float) -> tuple[str, dict[str, Any]]:
    return device, {
        "device_id": device,
        "ts": ts,
        "rul": value,
        "rul_unit": "cycles",
        "lower": None,
        "upper": None,
        "model_name": "plant_pump",
        "model_version": "1",
        "window_size": 30,
        "labels": LABELS,
    }


def states(alerts: list[Received]) -> list[tuple[Any, ...]]:
    return [(a.key, a.value["status"], a.value["severity"], a.value["count"]) for a in alerts]


def wait_for_events(worker: WorkerProcess, agent: str, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.metric(f'sentio_stream_events_total{{agent="{agent}"}}') < count:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.3)


def test_offline_and_rul_alerts_fire_and_resolve_and_ack_acknowledges(
    stream_testbed: StreamTestbed,
) -> None:
    bed = stream_testbed.configure(
        streams={
            "alerts": {
                "check_interval_s": 1,
                "rul_low": {"below": 50, "critical_below": 20, "hysteresis": 10},
            }
        }
    )
    worker = bed.start_worker(agents="alerts")
    t0 = now_us()
    bed.produce("device-events", [device_event("pump-1", "OFFLINE", t0)])
    bed.produce("device-events", [device_event("pump-2", "OFFLINE", t0)])
    bed.produce_raw("device-events", [(b"pump-3", b"not avro")])
    bed.produce("device-events", [device_event("pump-1", "ONLINE", t0 + 40 * S)])
    ruls = [(0, 45.0), (10, 40.0), (20, 15.0), (30, 55.0), (40, 70.0)]  # below 50: 2 to fire
    bed.produce("rul", [rul("pump-4", t0 + t * S, value) for t, value in ruls])

    alerts = bed.read("alerts", count=6)
    assert sorted(states(alerts)) == [
        (b"pump-1/device_offline", "FIRING", "MAJOR", 1),
        (b"pump-1/device_offline", "RESOLVED", "MAJOR", 1),
        (b"pump-2/device_offline", "FIRING", "MAJOR", 1),
        (b"pump-4/rul_low", "FIRING", "CRITICAL", 3),
        (b"pump-4/rul_low", "FIRING", "MAJOR", 2),
        (b"pump-4/rul_low", "RESOLVED", "CRITICAL", 3),
    ]
    pump4 = [a.value for a in alerts if a.key == b"pump-4/rul_low"]
    assert [(a["status"], a["severity"]) for a in pump4] == [
        ("FIRING", "MAJOR"),  # second prediction below 50
        ("FIRING", "CRITICAL"),  # 15 < critical_below 20: escalated at once
        ("RESOLVED", "CRITICAL"),  # 70 > 50 + hysteresis 10 (55 only held it)
    ]
    assert pump4[2]["end_ts"] == t0 + 40 * S
    assert pump4[0]["message"] == "pump-4 remaining useful life 40 cycles < 50"
    pump1 = [a.value for a in alerts if a.key == b"pump-1/device_offline"]
    assert [a["status"] for a in pump1] == ["FIRING", "RESOLVED"]  # in order, one key
    assert pump1[1]["alert_id"] == pump1[0]["alert_id"] == f"pump-1/device_offline/{t0}"
    assert (pump1[1]["start_ts"], pump1[1]["end_ts"]) == (t0, t0 + 40 * S)
    assert pump1[0]["message"] == "pump-1 OFFLINE: no reading for 30 s"
    assert pump1[0]["labels"] == LABELS

    before_ack = now_us()
    config = ["-c", str(bed.config_path)]
    sent = CliRunner().invoke(cli, ["alerts", "ack", "pump-2", "device_offline", *config])
    assert (sent.exit_code, sent.stdout) == (0, "ACK sent for pump-2/device_offline\n")
    alerts = bed.read("alerts", count=7)
    latest = latest_per_key(a.value for a in alerts)
    acked = latest["pump-2/device_offline"]
    assert (acked["status"], acked["end_ts"]) == ("ACKNOWLEDGED", None)
    assert before_ack <= acked["ack_ts"] <= now_us()
    assert latest["pump-1/device_offline"]["status"] == "RESOLVED"
    listed = CliRunner().invoke(cli, ["alerts", "list", *config])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "KEY",
        "STATUS",
        "SEVERITY",
        "COUNT",
        "SINCE",
        "ALERT",
        "ID",
        "MESSAGE",
    ]
    assert lines[1].split()[:4] == ["pump-2/device_offline", "ACKNOWLEDGED", "MAJOR", "1"]
    assert lines[2:] == ["1 open alert(s)"]

    dead = bed.read("deadletter", count=1)
    assert [(d.value["stage"], d.value["key"]) for d in dead] == [("streams.alerts", b"pump-3")]
    assert worker.metric('sentio_stream_alerts_total{severity="MAJOR",status="FIRING"}') == 3
    assert worker.metric('sentio_stream_alerts_total{severity="CRITICAL",status="RESOLVED"}') == 1
    assert worker.metric('sentio_stream_alerts_total{severity="MAJOR",status="RESOLVED"}') == 1
    assert worker.metric('sentio_stream_alerts_total{severity="CRITICAL",status="FIRING"}') == 1
    assert worker.metric('sentio_stream_alerts_total{severity="MAJOR",status="ACKNOWLEDGED"}') == 1
    assert worker.stop() == 0


def test_n_anomalies_give_one_alert_and_pending_progress_survives_a_new_worker(
    stream_testbed: StreamTestbed,
) -> None:
    bed = stream_testbed.configure(
        streams={
            "alerts": {
                "check_interval_s": 1,
                "anomaly": {
                    "repeat": 3,
                    "window_s": 600,
                    "suppress_s": 600,
                    "resolve_after_s": 4,
                },
            }
        }
    )
    worker = bed.start_worker(agents="alerts")
    t0 = now_us()
    bed.produce("anomalies", [anomaly("pump-1", t0, 50.0), anomaly("pump-1", t0 + S, 51.0)])
    wait_for_events(worker, "alerts", 2)
    assert worker.stop() == 0  # two of three anomalies: pending, nothing sent

    # A new worker with an empty state folder: the pending progress comes from the changelog.
    second = bed.start_worker(agents="alerts")
    later = now_us()
    bed.produce(
        "anomalies",
        [anomaly("pump-1", later + i * S // 10, 52.0 + i) for i in range(5)],
    )
    alerts = bed.read("alerts", count=2, timeout_s=60)
    assert states(alerts) == [
        (b"pump-1/anomaly", "FIRING", "MINOR", 3),  # the third anomaly fires it
        (b"pump-1/anomaly", "RESOLVED", "MINOR", 7),  # four quiet seconds; repeats suppressed
    ]
    fired, resolved = alerts[0].value, alerts[1].value
    assert fired["start_ts"] == later and fired["alert_id"] == resolved["alert_id"]
    assert resolved["end_ts"] == later + 4 * S // 10 + 4 * S
    assert resolved["message"] == "pump-1 anomaly: temp=56 (score 0.98)"
    assert second.metric('sentio_stream_alerts_total{severity="MINOR",status="FIRING"}') == 1
    assert second.stop() == 0
