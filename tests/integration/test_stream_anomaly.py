"""The anomaly agent through `sentio stream worker` against the real Kafka: a known series
with an injected spike gives one Anomaly with the expected values; detector state survives a
worker replaced by one with an empty state folder (recovered from the changelog)."""

from __future__ import annotations

from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401

from sentio_iot.records import Metric, Reading

T0 = 1_700_000_040_000_000
S = 1_000_000
NOISE = [10.0, 10.2, 9.8, 10.1, 9.9]  # median 10, MAD 0.1


def reading(ts_s: int, temp: float) -> tuple[str, dict[str, object]]:
    metrics = [Metric("temp", temp, "degC"), Metric("vibration", 1.0 + (ts_s % 3) * 0.01, "mm/s")]
    record = Reading("pump-1", T0 + ts_s * S, metrics, "simulate", {"kind": "pump"}, ts_s)
    return "pump-1", record.to_record()


def test_spike_gives_one_anomaly_and_state_survives_a_new_worker(
    stream_testbed: StreamTestbed,
) -> None:
    bed = stream_testbed.configure(
        streams={
            "anomaly": {
                "detector": "robust_zscore",
                "params": {"warmup": 10},
                "threshold": 0.9,
                "refractory_s": 60,
            }
        }
    )
    worker = bed.start_worker(agents="anomaly")
    # 20 s of noise (warm-up ends after 10), a spike at 20 s, noise again
    values = NOISE * 4 + [50.0] + NOISE
    bed.produce("readings", [reading(i, v) for i, v in enumerate(values)])
    bed.produce_raw("readings", [(b"pump-1", b"not avro")])

    found = bed.read("anomalies", count=1)
    assert len(found) == 1
    anomaly = found[0].value
    assert found[0].key == b"pump-1"
    assert (anomaly["device_id"], anomaly["metric"], anomaly["ts"]) == (
        "pump-1",
        "temp",
        T0 + 20 * S,
    )
    assert anomaly["value"] == 50.0 and anomaly["threshold"] == 0.9
    assert 0.99 < anomaly["score"] <= 1.0
    assert abs(anomaly["expected"] - 10.0) < 0.05
    assert anomaly["lower"] < anomaly["expected"] < anomaly["upper"] < 11.0
    assert anomaly["detector"] == "robust_zscore" and anomaly["detector_version"].startswith("1-")
    assert anomaly["labels"] == {"kind": "pump"}
    assert found[0].headers["traceparent"].startswith(b"00-")
    assert worker.metric('sentio_stream_anomalies_total{detector="robust_zscore"}') == 1
    assert worker.metric('sentio_stream_deadletter_total{agent="readings"}') == 1
    assert worker.stop() == 0

    # A worker on another port has its own, empty state folder: it recovers the warm
    # detectors from the changelog, so a spike in its first readings is caught at once
    # (a cold detector would still be warming up and say nothing).
    second = bed.start_worker(agents="anomaly")
    bed.produce("readings", [reading(100, 10.0), reading(101, 60.0), reading(102, 10.1)])
    found = bed.read("anomalies", count=2)
    assert [(a.value["ts"], a.value["value"]) for a in found] == [
        (T0 + 20 * S, 50.0),
        (T0 + 101 * S, 60.0),
    ]
    assert second.metric('sentio_stream_anomalies_total{detector="robust_zscore"}') == 1
    assert second.stop() == 0
