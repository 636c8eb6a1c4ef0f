"""The rollups agent through `sentio stream worker` against the real Kafka: exact values."""

from __future__ import annotations

import json
import math

import httpx
from confluent_kafka import Producer
from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401

from sentio_iot.records import Metric, Reading

T0 = 1_700_000_040_000_000  # a minute boundary (µs)
S = 1_000_000


def reading(device: str, ts_us: int, **values: float) -> Reading:
    metrics = [Metric(name, value, "degC") for name, value in values.items()]
    return Reading(device, ts_us, metrics, "simulate", {"kind": "pump"}, 0)


def test_known_series_gives_exact_rollups_and_poison_goes_to_dead_letter(
    stream_testbed: StreamTestbed,
) -> None:
    bed = stream_testbed.configure(streams={"rollups": {"windows_s": [60, 120], "grace_s": 0}})
    worker = bed.start_worker(agents="rollups")
    # pump-1: minute 0 gets 1..6 (every 10 s), minute 1 gets 10 and 20, then one value at
    # minute 2 closes minutes 0 and 1 (60 s windows) and the 120 s window [0, 120).
    series = [(i * 10 * S, float(i + 1)) for i in range(6)] + [(60 * S, 10.0), (90 * S, 20.0)]
    records = [("pump-1", reading("pump-1", T0 + ts, temp=v).to_record()) for ts, v in series]
    bed.produce("readings", records[:4])
    bed.produce_raw("readings", [(b"pump-1", b"not avro")])  # poison in the middle
    bed.produce("readings", records[4:])
    bed.produce("readings", [("pump-1", reading("pump-1", T0 + 120 * S, temp=99.0).to_record())])

    rollups = bed.read("rollups", count=3)
    got = {(r.value["window_s"], r.value["window_start"]): r.value for r in rollups}
    assert sorted(got) == [(60, T0), (60, T0 + 60 * S), (120, T0)]
    minute0 = got[(60, T0)]
    assert (minute0["count"], minute0["min"], minute0["max"]) == (6, 1.0, 6.0)
    assert (minute0["sum"], minute0["mean"], minute0["last"]) == (21.0, 3.5, 6.0)
    assert math.isclose(minute0["stddev"], math.sqrt(35 / 12), rel_tol=1e-12)
    assert minute0["window_end"] == T0 + 60 * S
    assert minute0["unit"] == "degC" and minute0["labels"] == {"kind": "pump"}
    minute1 = got[(60, T0 + 60 * S)]
    assert (minute1["count"], minute1["min"], minute1["max"], minute1["mean"]) == (
        2,
        10.0,
        20.0,
        15.0,
    )
    assert (minute1["sum"], minute1["last"], minute1["stddev"]) == (30.0, 20.0, 5.0)
    both = got[(120, T0)]
    assert (both["count"], both["sum"], both["min"], both["max"], both["last"]) == (
        8,
        51.0,
        1.0,
        20.0,
        20.0,
    )
    assert all(r.key == b"pump-1" for r in rollups)
    assert all(r.headers["traceparent"].startswith(b"00-") for r in rollups)

    dead = bed.read("deadletter", count=1)
    assert len(dead) == 1
    letter = dead[0].value
    assert letter["stage"] == "streams.readings"  # decoded (and dead-lettered) once for all steps
    assert letter["error_type"] == "DeserializationError"
    assert "magic byte is 0x6e, not 0x00" in letter["error"]
    assert letter["value"] == b"not avro" and letter["key"] == b"pump-1"
    assert letter["topic"] == bed.topic("readings")

    assert worker.metric('sentio_stream_deadletter_total{agent="readings"}') == 1
    assert worker.metric('sentio_stream_emitted_total{agent="rollups",topic="rollups"}') == 3
    assert worker.stop() == 0


def test_two_workers_share_the_partitions_without_loss_or_repeats(
    stream_testbed: StreamTestbed,
) -> None:
    bed = stream_testbed.configure(
        partitions=4, streams={"rollups": {"windows_s": [60], "grace_s": 0}, "batch_max": 200}
    )
    devices = [f"fan-{d:02d}" for d in range(12)]

    def second(s: int) -> list[tuple[str, dict[str, object]]]:
        return [
            (d, reading(d, T0 + s * S, rpm=float(i * 100 + s)).to_record())
            for i, d in enumerate(devices)
        ]

    first = bed.start_worker(agents="rollups")
    bed.produce("readings", [r for s in range(0, 150) for r in second(s)])
    other = bed.start_worker(agents="rollups")  # joins mid-stream: a rebalance
    bed.produce("readings", [r for s in range(150, 301) for r in second(s)])

    rollups = bed.read("rollups", count=len(devices) * 5, timeout_s=90, settle_s=3)
    windows = sorted((r.key, r.value["window_start"]) for r in rollups)
    expected = sorted((d.encode(), T0 + w * 60 * S) for d in devices for w in range(5))
    assert windows == expected  # each window once: nothing lost, nothing repeated
    for r in rollups:
        i = devices.index(r.value["device_id"])
        start_s = (r.value["window_start"] - T0) // S
        assert r.value["count"] == 60
        assert r.value["sum"] == sum(i * 100 + s for s in range(start_s, start_s + 60))
    events = 'sentio_stream_events_total{agent="rollups"}'
    assert first.metric(events) + other.metric(events) >= len(devices) * 301
    assert other.metric(events) > 0  # the second worker took partitions
    assert other.stop() == 0, other.log(6000)
    assert first.stop() == 0, first.log(6000)


def test_poison_of_every_kind_is_dead_lettered_once_and_the_worker_goes_on(
    stream_testbed: StreamTestbed,
) -> None:
    bed = stream_testbed.configure(
        partitions=1, streams={"rollups": {"windows_s": [60], "grace_s": 0}}
    )
    serde = bed.serde("readings")
    serde.register()
    other = f"{bed.name}-other-value"
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    answer = httpx.post(
        f"{bed.config.schema_registry.url}/subjects/{other}/versions",
        json={"schemaType": "JSON", "schema": json.dumps(schema)},
        timeout=10,
    )
    answer.raise_for_status()
    json_id = int(answer.json()["id"])
    huge = b"\x00\x00\x00\x00\x01" + bytes(1_020_000)

    def good(second: int) -> bytes:
        return serde.encode(reading("pump-1", T0 + second * S, temp=float(second)).to_record())

    worker = bed.start_worker(agents="rollups,device_state,anomaly")
    producer = Producer(
        {"bootstrap.servers": bed.config.kafka.bootstrap_servers, "message.max.bytes": 1_100_000}
    )
    values: list[bytes | None] = [good(0), b"\x00" + json_id.to_bytes(4, "big") + b"{}", good(1)]
    values += [huge, good(2), None, *(good(s) for s in range(3, 61))]
    for value in values:
        producer.produce(bed.topic("readings"), value, b"pump-1")
    assert producer.flush(15) == 0

    [rollup] = bed.read("rollups", count=1)
    assert (rollup.value["count"], rollup.value["sum"]) == (60, float(sum(range(60))))
    dead = bed.read("deadletter", count=3)
    letters = sorted(dead, key=lambda d: d.value["offset"])
    assert [(d.value["offset"], d.value["stage"]) for d in letters] == [
        (1, "streams.readings"),
        (3, "streams.readings"),
        (5, "streams.readings"),
    ]  # once each, not once per step
    assert "JSON, not AVRO" in letters[0].value["error"]
    assert letters[1].value["value_truncated"] and letters[1].value["value_size"] == len(huge)
    assert worker.health() == 200
    assert worker.metric('sentio_stream_deadletter_total{agent="readings"}') == 3
    for page in ("/table/device_state/pump-1/", "/router/", "/graph/", "/stats/"):
        answer = httpx.get(f"http://127.0.0.1:{worker.web_port}{page}", timeout=5)
        assert answer.status_code == 404, page  # no door to the tables' contents
    assert worker.stop() == 0
