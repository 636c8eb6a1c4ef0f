"""benchmarks/state_size.py on a tiny fleet: every step measured, and what must not grow does not."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import state_size  # noqa: E402

DEVICES = 3


async def test_state_size_measures_every_step_and_bounded_states_stay_bounded() -> None:
    rows = await state_size.run(DEVICES, [20, 40], step_s=10.0)
    by = {(row.step, row.readings): row for row in rows}
    assert sorted(by) == sorted(
        (step, age) for step in (*state_size.STEPS, "alerts") for age in (20, 40)
    )
    for step in state_size.STEPS:
        for age in (20, 40):
            row = by[step, age]
            # one state per device per step, held live and written as one record each
            assert row.keys == DEVICES, (step, age)
            assert row.series == DEVICES * len(state_size.PUMP)
            assert row.live > 0 and row.table > 0, (step, age)
            assert all(size > 0 for size in row.records), (step, age)
    # a device's state and a RUL window (10 rows and a 20-row baseline, both full from the
    # 20th reading) hold the same fields after 20 and 40 readings: their records do not grow
    for step in ("device_state", "rul"):
        assert by[step, 20].records == by[step, 40].records, step
    # the anomaly record keeps a detector memory for each of the five metrics of a device
    assert min(by["anomaly", 20].records) > 5 * 100
    # an alert slot is held per (device, alert type) at most, and only while not idle
    for age in (20, 40):
        alerts = by["alerts", age]
        assert alerts.keys <= DEVICES * 3 and len(alerts.records) == alerts.keys


def test_memory_soak_slope_and_minute_marks_from_samples() -> None:
    from benchmarks import memory_soak

    # RSS rising 3 MB per 10 s for 10 minutes: 18 MB/min, whatever the offset
    samples = [memory_soak.Sample(t, 700 + 0.3 * t, t * 100, 0) for t in range(10, 601, 10)]
    assert abs(memory_soak.slope_mb_per_min(samples) - 18.0) < 1e-9
    flat = [memory_soak.Sample(t, 900.0, 0, None) for t in range(10, 301, 10)]
    assert memory_soak.slope_mb_per_min(flat) == 0.0
    assert memory_soak.slope_mb_per_min(samples[:1]) == 0.0
    mark = memory_soak.at_minute(samples, 5)
    assert mark is not None and mark.at_s == 300
    assert memory_soak.at_minute(flat, 10) is None  # the run was 5 minutes long
