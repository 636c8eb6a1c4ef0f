"""When the replayed tables are written (streams/snapshots.py): a partition's first commit after
a catch-up writes markers only, and the partitions' snapshots are spread over the commits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_stream_snapshots import ANOMALY, batches, reader, run, states, worker
from test_stream_steps import build

from sentio_iot.streams.snapshots import marker_key


async def test_a_restarted_worker_writes_nothing_at_its_first_commit_and_keeps_its_markers(
    tmp_path: Path,
) -> None:
    everything = batches()
    killed, steps = worker(tmp_path / "killed", every=2)
    for items in everything[:4]:
        await run(killed, steps, items)
        killed.snapshots.flush()
    committed = [dict(live.table.data) for live in killed.snapshots.tables]  # type: ignore[attr-defined]

    again, again_steps = worker(tmp_path / "again", every=2)
    for data, live in zip(committed, again.snapshots.tables, strict=True):
        live.table.data.update(data)  # type: ignore[attr-defined]
    again.snapshots.read = reader([i for items in everything for i in items], [])
    await run(again, again_steps, everything[4])
    assert again.snapshots.replayed > 0
    assert again.snapshots.flush() == 0  # the changelogs still hold the states of the markers
    for data, live in zip(committed, again.snapshots.tables, strict=True):
        for partition in (0, 1):
            key = marker_key(partition)
            assert live.table.data[key] == data[key]  # type: ignore[attr-defined]
    # A second restart from the same markers replays further and ends in the same states.
    third, third_steps = worker(tmp_path / "third", every=2)
    for data, live in zip(committed, third.snapshots.tables, strict=True):
        live.table.data.update(data)  # type: ignore[attr-defined]
    third.snapshots.read = reader([i for items in everything for i in items], [])
    await run(third, third_steps, everything[4])
    assert states(third) == states(again)


async def test_the_partitions_snapshots_take_turns(tmp_path: Path) -> None:
    """every=4, two partitions: the first commit writes both markers (offset 0) and no
    state; then partition 1 is snapshotted at commits 4 and 8, partition 0 at commit 5."""
    app, steps = worker(tmp_path, every=4)
    rollups = app.snapshots.tables[0]

    def markers() -> list[bytes | None]:
        return [rollups.table.data.get(marker_key(p)) for p in (0, 1)]  # type: ignore[attr-defined]

    moved: list[set[int]] = []
    for items in batches()[:8]:
        await run(app, steps, items)
        before = markers()
        app.snapshots.flush()
        moved.append({p for p, (b, a) in enumerate(zip(before, markers(), strict=True)) if b != a})
    assert moved == [{0, 1}, set(), set(), {1}, {0}, set(), set(), {1}]
    # the markers, then three snapshots of 2 devices and a marker
    assert rollups.table.writes == 2 + 3 * 3  # type: ignore[attr-defined]


def few_readings_worker(tmp_path: Path, every: int, per_state: float) -> tuple[Any, list[Any]]:
    app, steps = build(
        tmp_path,
        ["rollups", "anomaly"],
        rollups={"windows_s": [60]},
        anomaly=ANOMALY,
        snapshot_every_commits=every,
        snapshot_readings_per_state=per_state,
    )
    app.snapshots.decode = json.loads
    return app, [steps["rollups"], steps["anomaly"]]


async def snapshotted(app: Any, steps: list[Any], commits: int) -> list[set[int]]:
    """A commit after each batch: the partitions whose marker each commit moved."""
    rollups = app.snapshots.tables[0]
    moved = []
    for items in batches()[:commits]:
        await run(app, steps, items)
        before = [rollups.table.data.get(marker_key(p)) for p in (0, 1)]
        app.snapshots.flush()
        after = [rollups.table.data.get(marker_key(p)) for p in (0, 1)]
        moved.append({p for p in (0, 1) if before[p] != after[p]})
    return moved


async def test_a_due_snapshot_waits_for_readings_worth_its_states(tmp_path: Path) -> None:
    """Two devices per partition, 20 readings per partition per commit: at 40 readings per
    state a snapshot due at commit 3 (partition 1: 60 readings, 2 states) waits for commit 4."""
    app, steps = few_readings_worker(tmp_path, every=3, per_state=40)
    moved = await snapshotted(app, steps, 6)
    assert moved == [{0, 1}, set(), set(), {0, 1}, set(), set()]


async def test_a_waiting_snapshot_comes_after_six_times_every_commits(tmp_path: Path) -> None:
    app, steps = few_readings_worker(tmp_path, every=2, per_state=1000)
    moved = await snapshotted(app, steps, 13)
    # commit 1: markers; then partition 1 (one commit ahead) at commit 12, partition 0 at 13
    assert moved[0] == {0, 1} and moved[11] == {1} and moved[12] == {0}
    assert not any(moved[1:11])
