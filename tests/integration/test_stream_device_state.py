"""The device-state agent through `sentio stream worker`: OFFLINE after silence, ONLINE on return."""

from __future__ import annotations

from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401

from sentio_iot.records import Metric, Reading, now_us


def record(device: str, temp: float) -> tuple[str, dict[str, object]]:
    reading = Reading(device, now_us(), [Metric("temp", temp, "degC")], "modbus", {"kind": "pump"})
    return device, reading.to_record()


def test_silent_device_goes_offline_and_comes_back_online(stream_testbed: StreamTestbed) -> None:
    bed = stream_testbed.configure(
        streams={"device_state": {"offline_after_s": 3, "check_interval_s": 0.5}}
    )
    worker = bed.start_worker(agents="device_state")
    bed.produce("readings", [record("pump-1", 20.0), record("pump-2", 30.0)])
    bed.produce("readings", [record("pump-1", 21.0), record("pump-2", 31.0)])

    offline = bed.read("device-events", count=2, timeout_s=30, settle_s=0.5)
    assert sorted((e.key, e.value["kind"]) for e in offline) == [
        (b"pump-1", "OFFLINE"),
        (b"pump-2", "OFFLINE"),
    ]
    first = offline[0].value
    assert first["source"] == "streams" and first["labels"] == {"kind": "pump"}
    assert first["details"]["timeout_s"] == "3.000"
    assert float(first["details"]["silent_s"]) > 3.0
    assert first["message"].startswith(f"{first['device_id']} OFFLINE: no reading for ")

    bed.produce("readings", [record("pump-1", 22.0)])
    events = bed.read("device-events", count=3, timeout_s=30, settle_s=0.5)
    pump1 = [e.value["kind"] for e in events if e.key == b"pump-1"]
    assert pump1[:2] == ["OFFLINE", "ONLINE"]
    assert [e.value["kind"] for e in events if e.key == b"pump-2"] == ["OFFLINE"]
    back = next(e.value for e in events if e.value["kind"] == "ONLINE")
    assert back["message"].startswith("pump-1 ONLINE: reading again after ")
    assert (
        worker.metric('sentio_stream_emitted_total{agent="device_state",topic="device-events"}')
        >= 3
    )
    assert worker.stop() == 0
