"""Tumbling-window rollups: exact statistics, boundaries, lateness, state round-trip, schema."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from fastavro.validation import validate

from sentio_iot.schemas import parsed_schema
from sentio_iot.streams.rollups import Rollup, RollupAggregator, WindowAccumulator, window_start

S = 1_000_000  # µs per second
T0 = 1_700_000_000 * S - (1_700_000_000 * S) % (3600 * S)  # an hour boundary


def feed(agg: RollupAggregator, events: list[tuple[int, float | None]]) -> list[Rollup]:
    out: list[Rollup] = []
    for ts, value in events:
        out.extend(agg.add("dev-1", "temp", ts, value, "degC", {"site": "a"}))
    return out


def test_known_sequence_exact_statistics() -> None:
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    agg = RollupAggregator(windows_s=(60,))
    assert feed(agg, [(T0 + i * S, v) for i, v in enumerate(values)]) == []
    [r] = agg.close_all()
    assert (r.count, r.min, r.max, r.sum, r.mean, r.last) == (8, 2.0, 9.0, 40.0, 5.0, 9.0)
    assert r.stddev == pytest.approx(statistics.pstdev(values), rel=1e-12)
    assert r.stddev == pytest.approx(2.0, rel=1e-12)
    assert (r.window_start, r.window_end, r.window_s) == (T0, T0 + 60 * S, 60)
    assert (r.device_id, r.metric, r.unit, dict(r.labels)) == (
        "dev-1",
        "temp",
        "degC",
        {"site": "a"},
    )


def test_single_value_has_zero_stddev_and_none_is_skipped() -> None:
    agg = RollupAggregator(windows_s=(60,))
    feed(agg, [(T0, None), (T0 + S, 3.5), (T0 + 2 * S, None), (T0 + 3 * S, math.nan)])
    [r] = agg.close_all()
    assert (r.count, r.min, r.max, r.sum, r.mean, r.last, r.stddev) == (
        1,
        3.5,
        3.5,
        3.5,
        3.5,
        3.5,
        0.0,
    )


def test_welford_keeps_precision_on_large_offsets() -> None:
    values = [1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16]
    agg = RollupAggregator(windows_s=(60,))
    feed(agg, [(T0 + i * S, v) for i, v in enumerate(values)])
    [r] = agg.close_all()
    assert statistics.pstdev(values) == pytest.approx(math.sqrt(22.5), rel=1e-12)
    assert r.stddev == pytest.approx(statistics.pstdev(values), rel=1e-12)


def test_event_exactly_at_window_end_belongs_to_next_window() -> None:
    agg = RollupAggregator(windows_s=(60,))
    first = feed(agg, [(T0, 1.0), (T0 + 60 * S - 1, 2.0)])
    assert first == []
    [closed] = feed(agg, [(T0 + 60 * S, 10.0)])
    assert (closed.window_start, closed.window_end, closed.count, closed.sum) == (
        T0,
        T0 + 60 * S,
        2,
        3.0,
    )
    [nxt] = agg.close_all()
    assert (nxt.window_start, nxt.count, nxt.sum) == (T0 + 60 * S, 1, 10.0)
    assert window_start(T0 + 60 * S, 60) == T0 + 60 * S
    assert window_start(T0 + 60 * S - 1, 60) == T0


def test_two_window_sizes_at_once() -> None:
    agg = RollupAggregator(windows_s=(60, 3600))
    # two values per minute for three minutes
    events = [(T0 + m * 60 * S + k * 30 * S, float(m * 2 + k)) for m in range(3) for k in range(2)]
    closed = feed(agg, events)
    assert [(r.window_s, r.window_start, r.count, r.sum) for r in closed] == [
        (60, T0, 2, 1.0),
        (60, T0 + 60 * S, 2, 5.0),
    ]
    closed = feed(agg, [(T0 + 3600 * S, 100.0)])
    assert [(r.window_s, r.window_start, r.count, r.sum) for r in closed] == [
        (60, T0 + 120 * S, 2, 9.0),
        (3600, T0, 6, 15.0),
    ]
    hour = closed[1]
    assert (hour.min, hour.max, hour.last, hour.mean) == (0.0, 5.0, 5.0, 2.5)
    assert hour.stddev == pytest.approx(statistics.pstdev([0, 1, 2, 3, 4, 5]), rel=1e-12)
    rest = agg.close_all()
    assert [(r.window_s, r.window_start, r.count) for r in rest] == [
        (60, T0 + 3600 * S, 1),
        (3600, T0 + 3600 * S, 1),
    ]


def test_late_within_grace_is_included_beyond_grace_dropped_and_counted() -> None:
    agg = RollupAggregator(windows_s=(60,), grace_s=10)
    assert feed(agg, [(T0 + 10 * S, 1.0), (T0 + 65 * S, 50.0)]) == []  # watermark T0+55s
    assert feed(agg, [(T0 + 30 * S, 3.0)]) == []  # late but within grace: included
    [closed] = feed(agg, [(T0 + 70 * S, 60.0)])  # watermark T0+60s closes [T0, T0+60s)
    assert (closed.window_start, closed.count, closed.sum, closed.last) == (T0, 2, 4.0, 3.0)
    assert feed(agg, [(T0 + 59 * S, 99.0)]) == []  # beyond grace: dropped
    assert agg.late_dropped == {60: 1}
    assert agg.late_dropped_total == 1
    rest = agg.close_all()
    assert [(r.window_start, r.count, r.sum) for r in rest] == [(T0 + 60 * S, 2, 110.0)]
    # a closed window never comes back, not even after close_all()
    assert feed(agg, [(T0 + 20 * S, 5.0), (T0 + 61 * S, 5.0)]) == []
    assert agg.close_all() == []
    assert agg.late_dropped == {60: 3}


def test_out_of_order_events() -> None:
    agg = RollupAggregator(windows_s=(60,), grace_s=30)
    order = [40, 5, 50, 20, 59, 0, 30]  # seconds into the window, out of order
    feed(agg, [(T0 + s * S, float(s)) for s in order])
    [r] = agg.close_all()
    assert (r.count, r.min, r.max, r.sum, r.last) == (7, 0.0, 59.0, 204.0, 59.0)
    assert r.mean == 204.0 / 7
    assert r.stddev == pytest.approx(statistics.pstdev(map(float, order)), rel=1e-12)
    assert agg.late_dropped_total == 0


def test_last_is_latest_event_time_and_later_arrival_wins_ties() -> None:
    agg = RollupAggregator(windows_s=(60,), grace_s=60)
    feed(agg, [(T0 + 30 * S, 1.0), (T0 + 10 * S, 2.0), (T0 + 30 * S, 3.0), (T0 + 20 * S, 4.0)])
    [r] = agg.close_all()
    assert r.last == 3.0


def test_watermark_is_per_device() -> None:
    agg = RollupAggregator(windows_s=(60,))
    assert agg.add("a", "m", T0 + 5 * S, 1.0) == []
    assert agg.add("b", "m", T0 + 3 * 60 * S, 1.0) == []  # b's clock does not close a's window
    assert agg.watermark("a") == T0 + 5 * S
    assert agg.add("a", "m", T0 + 6 * S, 2.0) == []
    [r] = agg.add("a", "m", T0 + 60 * S, 3.0)
    assert (r.device_id, r.count, r.sum) == ("a", 2, 3.0)
    assert agg.late_dropped_total == 0


def test_flush_closes_idle_windows_once() -> None:
    agg = RollupAggregator(windows_s=(60,), grace_s=10)
    feed(agg, [(T0 + 5 * S, 1.0)])
    assert agg.flush(T0 + 69 * S) == []
    [r] = agg.flush(T0 + 70 * S)
    assert (r.window_start, r.count) == (T0, 1)
    assert agg.flush(T0 + 200 * S) == []
    assert feed(agg, [(T0 + 6 * S, 2.0)]) == []
    assert agg.late_dropped == {60: 1}
    assert agg.open_windows() == 0


def test_state_round_trip_mid_window_gives_identical_rollups() -> None:
    events = [(T0 + i * 7 * S + (i % 3) * S, math.sin(i) * 10 + 1e6) for i in range(40)]
    events += [(T0 + 100 * S, 5.0), (T0 + 3 * S, 7.0)]  # one late within grace, one beyond
    half = len(events) // 2

    straight = RollupAggregator(windows_s=(60, 3600), grace_s=15)
    expected = feed(straight, events) + straight.close_all()

    first = RollupAggregator(windows_s=(60, 3600), grace_s=15)
    got = feed(first, events[:half])
    restored = RollupAggregator.from_state(json.loads(json.dumps(first.to_state())))
    got += feed(restored, events[half:]) + restored.close_all()

    assert got == expected
    assert restored.late_dropped == straight.late_dropped


def test_accumulator_state_round_trip_is_json_and_exact() -> None:
    acc = WindowAccumulator("dev-1", "temp", 60, T0)
    assert WindowAccumulator.from_state(json.loads(json.dumps(acc.to_state()))) == acc
    for i, v in enumerate([0.1, 0.7, -3.3]):
        acc.add(T0 + i * S, v, "degC", {"site": "a"})
    state = json.loads(json.dumps(acc.to_state()))
    copy = WindowAccumulator.from_state(state)
    assert copy == acc
    copy.add(T0 + 10 * S, 2.2, "degC", {"site": "a"})
    acc.add(T0 + 10 * S, 2.2, "degC", {"site": "a"})
    assert copy.to_rollup() == acc.to_rollup()


def test_to_record_matches_avro_schema() -> None:
    agg = RollupAggregator(windows_s=(60,))
    feed(agg, [(T0, 1.0), (T0 + S, 2.0)])
    agg.add("dev-2", "rpm", T0, 3.0)  # no unit, no labels
    records = [r.to_record() for r in agg.close_all()]
    schema = parsed_schema("Rollup")
    names = [f["name"] for f in schema["fields"]]
    for record in records:
        assert list(record) == names
        assert validate(record, schema, raise_errors=True)
    assert records[1]["unit"] is None
    assert records[1]["labels"] == {}


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        RollupAggregator(windows_s=())
    with pytest.raises(ValueError):
        RollupAggregator(windows_s=(60, 60))
    with pytest.raises(ValueError):
        RollupAggregator(windows_s=(0,))
    with pytest.raises(ValueError):
        RollupAggregator(grace_s=-1)
    with pytest.raises(ValueError):
        WindowAccumulator("d", "m", 60, T0).to_rollup()


def test_add_reading_gives_what_add_per_metric_gives_rollups_state_and_late_counts() -> None:
    rng = random.Random(13)
    per_metric = RollupAggregator(windows_s=(60, 300), grace_s=20)
    per_reading = RollupAggregator(windows_s=(60, 300), grace_s=20)
    clocks = {"a": T0, "b": T0, "c": T0}
    gaps: list[float | None] = [None, math.nan, math.inf]
    for step in range(4000):
        device = rng.choice("abc")
        clocks[device] += rng.choice([1, 2, 7, 45]) * S
        ts = clocks[device] - (rng.choice([0, 0, 0, 30, 400]) * S)  # some late, some very late
        metrics = [
            {
                "name": name,
                "value": rng.choice(gaps) if rng.random() < 0.1 else rng.uniform(-5, 5) + 1e9,
                "unit": rng.choice(["u", None]),
            }
            for name in rng.sample(["temp", "vib", "rpm", "load"], rng.randint(0, 4))
        ]
        labels = {"line": rng.choice("xy")}
        want = []
        for m in metrics:
            want += per_metric.add(device, m["name"], ts, m["value"], m["unit"], labels)
        assert per_reading.add_reading(device, ts, metrics, labels) == want
        if step % 997 == 0:
            now = max(clocks.values()) - 100 * S
            assert per_reading.flush(now) == per_metric.flush(now)
    assert per_reading.close_all() == per_metric.close_all()
    assert per_reading.to_state() == per_metric.to_state()
    assert per_reading.late_dropped == per_metric.late_dropped and per_metric.late_dropped_total > 0
