"""The VictoriaMetrics naming contract: names, labels, values and millisecond timestamps."""

from __future__ import annotations

import json

import pytest

from sentio_iot.sinks.vm_payloads import group, import_body
from sentio_iot.sinks.vm_series import (
    Defaults,
    Rejected,
    alert_samples,
    anomaly_samples,
    label_name,
    metric_name,
    reading_samples,
    rollup_samples,
    rul_samples,
)

D = Defaults(tenant="acme", site="plant-1")
TS_US = 1_795_000_000_123_456  # ms: 1_795_000_000_123


def test_names_are_sanitised() -> None:
    assert metric_name("Spindle Speed.rpm") == "sentio_spindle_speed_rpm"
    assert metric_name("temperature") == "sentio_temperature"
    assert label_name("line-no") == "line_no"
    assert label_name("2nd") == "_2nd"
    assert label_name("__name__") == "label__name__"


def test_reading_samples() -> None:
    record = {
        "device_id": "pump-1",
        "ts": TS_US,
        "source": "modbus",
        "labels": {"tenant": "t9", "kind": "pump", "line-no": "3"},
        "metrics": [
            {"name": "Temperature", "value": 41.5, "text": None, "unit": "degC", "quality": "GOOD"},
            {"name": "state", "value": None, "text": "RUN", "unit": None, "quality": "GOOD"},
            {"name": "flow", "value": 2.0, "text": None, "unit": None, "quality": "BAD"},
        ],
    }
    base = [
        ("device", "pump-1"),
        ("kind", "pump"),
        ("line_no", "3"),
        ("site", "plant-1"),
        ("source", "modbus"),
        ("tenant", "t9"),
    ]
    assert list(reading_samples(record, D)) == [
        (
            (("__name__", "sentio_temperature"), *sorted([*base, ("unit", "degC")])),
            41.5,
            1_795_000_000_123,
        ),
        ((("__name__", "sentio_flow"), *base), 2.0, 1_795_000_000_123),
    ]


def plain_reading(ts_us: int = TS_US, **values: float) -> dict[str, object]:
    metrics = [{"name": name, "value": value, "unit": None} for name, value in values.items()]
    return {"device_id": "d", "ts": ts_us, "source": "s", "labels": {}, "metrics": metrics}


def test_nan_reading_is_rejected_after_the_good_metrics() -> None:
    record = plain_reading(a=1.0, b=float("nan"))
    taken = []
    with pytest.raises(Rejected, match="metric\\(s\\) b=nan: VictoriaMetrics cannot store NaN"):
        for sample in reading_samples(record, D):
            taken.append(sample)
    assert [(s[0][0][1], s[1]) for s in taken] == [("sentio_a", 1.0)]


def test_rollup_samples_per_stat_at_window_start() -> None:
    record = {
        "device_id": "m-1",
        "metric": "current",
        "unit": "A",
        "window_start": 60_000_000,
        "window_end": 120_000_000,
        "window_s": 60,
        "count": 3,
        "min": 1.0,
        "max": 3.0,
        "mean": 2.0,
        "sum": 6.0,
        "last": 3.0,
        "stddev": 1.0,
        "labels": {"site": "s2"},
    }
    samples = list(rollup_samples(record, D))
    labels = (
        ("device", "m-1"),
        ("site", "s2"),
        ("tenant", "acme"),
        ("unit", "A"),
        ("window", "1m"),
    )
    assert samples == [
        ((("__name__", f"sentio_current_{stat}"), *labels), value, 60_000)
        for stat, value in [
            ("count", 3.0),
            ("min", 1.0),
            ("max", 3.0),
            ("mean", 2.0),
            ("sum", 6.0),
            ("last", 3.0),
            ("stddev", 1.0),
        ]
    ]
    record["window_s"] = 3600
    assert dict(next(rollup_samples(record, D))[0])["window"] == "1h"
    record["window_s"] = 300
    assert dict(next(rollup_samples(record, D))[0])["window"] == "300s"


def test_anomaly_rul_alert_samples() -> None:
    anomaly = {
        "device_id": "p",
        "metric": "vibration",
        "ts": TS_US,
        "value": 9.0,
        "score": 7.5,
        "threshold": 4.0,
        "expected": 2.0,
        "lower": None,
        "upper": 3.0,
        "detector": "robust_zscore",
        "detector_version": "1",
        "labels": {},
    }
    got = {s[0][0][1]: (dict(s[0]), s[1], s[2]) for s in anomaly_samples(anomaly, D)}
    assert sorted(got) == [
        "sentio_anomaly_expected",
        "sentio_anomaly_score",
        "sentio_anomaly_upper",
        "sentio_anomaly_value",
    ]
    labels, value, ts = got["sentio_anomaly_score"]
    assert (labels["device"], labels["metric"], labels["detector"], value, ts) == (
        "p",
        "vibration",
        "robust_zscore",
        7.5,
        1_795_000_000_123,
    )

    rul = {
        "device_id": "e1",
        "ts": TS_US,
        "rul": 42.0,
        "rul_unit": "cycles",
        "lower": 30.0,
        "upper": None,
        "model_name": "lstm",
        "model_version": "3",
        "window_size": 30,
        "labels": {},
    }
    got_rul = [(dict(s[0]), s[1]) for s in rul_samples(rul, D)]
    assert [(s["__name__"], s["model"], s["model_version"], s["unit"], v) for s, v in got_rul] == [
        ("sentio_rul", "lstm", "3", "cycles", 42.0),
        ("sentio_rul_lower", "lstm", "3", "cycles", 30.0),
    ]

    alert = {
        "alert_id": "a",
        "device_id": "p",
        "type": "anomaly",
        "severity": "MAJOR",
        "status": "FIRING",
        "start_ts": 1_000_000,
        "end_ts": None,
        "ack_ts": None,
        "count": 1,
        "labels": {},
    }
    ((labels, value, ts),) = alert_samples(alert, D)
    assert (dict(labels)["severity"], dict(labels)["type"], value, ts) == (
        "MAJOR",
        "anomaly",
        1.0,
        1_000,
    )
    alert.update(status="RESOLVED", end_ts=5_000_000)
    ((_, value, ts),) = alert_samples(alert, D)
    assert (value, ts) == (0.0, 5_000)


def test_import_body_groups_series() -> None:
    a = (("__name__", "sentio_x"), ("device", "d"))
    body = import_body(group([(a, 1.0, 10), (a, 2.5, 20)]))
    assert [json.loads(line) for line in body.decode().splitlines()] == [
        {
            "metric": {"__name__": "sentio_x", "device": "d"},
            "values": [1.0, 2.5],
            "timestamps": [10, 20],
        }
    ]
    assert import_body({}) == b""


@pytest.mark.parametrize(
    ("ts_us", "reason"),
    [
        (0, "at or before 1970-01-01: the device clock was never set"),
        (-5_000_000, "at or before 1970-01-01"),
        (253_402_300_799_000_000, "more than 2 days ahead of this clock"),  # 9999-12-31
    ],
)
def test_timestamps_victoriametrics_would_drop_are_rejected(ts_us: int, reason: str) -> None:
    record = plain_reading(ts_us, a=1.0)
    with pytest.raises(Rejected, match=reason):
        list(reading_samples(record, D))


def test_infinite_values_are_rejected_like_nan() -> None:
    record = plain_reading(hot=float("inf"), ok=2.5, cold=float("-inf"))
    taken = []
    with pytest.raises(Rejected, match=r"metric\(s\) hot=inf, cold=-inf: .*NaN or infinite"):
        for sample in reading_samples(record, D):
            taken.append(sample)
    assert [(s[0][0][1], s[1]) for s in taken] == [("sentio_ok", 2.5)]
    rollup = {
        "device_id": "d",
        "metric": "m",
        "window_s": 60,
        "window_start": TS_US,
        "count": 1,
        "min": 1.0,
        "max": float("inf"),
        "sum": 1.0,
        "mean": 1.0,
        "last": 1.0,
        "stddev": 0.0,
        "labels": {},
    }
    with pytest.raises(Rejected, match="rollup m max is inf"):
        list(rollup_samples(rollup, D))
