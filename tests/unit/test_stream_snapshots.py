"""Replayed tables (streams/snapshots.py), without Kafka: written only at snapshots, and a
worker that starts from a snapshot and replays the readings since it ends exactly where one
uninterrupted run is, outputs and states alike.

The steps run on events made here (as in test_stream_steps.py); the replay reads the same
readings from a list instead of Kafka.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from test_stream_steps import DictTable, Event, Message, build, reading

from sentio_iot.settings.streams import StreamSettings
from sentio_iot.streams.app import StreamApp
from sentio_iot.streams.readings import ReadingBatch
from sentio_iot.streams.snapshots import ReplayMessage, marker_key

TOPIC = "x.readings"
ANOMALY = {"detector": "robust_zscore", "params": {"warmup": 5}, "threshold": 0.9}
DEVICES = ("pump-0", "pump-1", "pump-2", "pump-3")  # pump-N in partition N % 2
SECONDS = 130  # two 60 s windows close
PER_BATCH = 10  # seconds of readings per batch


def plant() -> list[tuple[Event, dict[str, Any]]]:
    """Readings of every device, second by second, with a spike now and then; offsets per
    partition in arrival order."""
    out: list[tuple[Event, dict[str, Any]]] = []
    offsets = [0, 0]
    for second in range(SECONDS):
        for n, device in enumerate(DEVICES):
            partition = n % 2
            spike = 80.0 if (second + 7 * n) % 41 == 40 else 0.0
            value = 10.0 + (second * (n + 3)) % 5 * 0.1 + spike
            record = reading(device, second, temp=value, vib=float(n)).to_record()
            message = Message(
                TOPIC, partition, offsets[partition], value=json.dumps(record).encode()
            )
            offsets[partition] += 1
            out.append((Event(message), record))
    return out


def batches() -> list[list[tuple[Event, dict[str, Any]]]]:
    items = plant()
    size = PER_BATCH * len(DEVICES)
    return [items[i : i + size] for i in range(0, len(items), size)]


def worker(
    tmp_path: Path, every: int = 3, anomaly: dict[str, Any] | None = ANOMALY
) -> tuple[StreamApp, list[Any]]:
    settings: dict[str, Any] = {"rollups": {"windows_s": [60]}, "snapshot_every_commits": every}
    if anomaly is not None:
        settings["anomaly"] = anomaly
    app, steps = build(tmp_path, ["rollups", "anomaly"], **settings)
    app.snapshots.decode = json.loads
    return app, [steps["rollups"], steps["anomaly"]]


async def run(
    app: StreamApp, steps: list[Any], items: list[tuple[Event, dict[str, Any]]]
) -> list[Any]:
    """What the readings agent does with a batch, minus Kafka: catch up, the steps, outputs."""
    events: Any = [event for event, _ in items]
    await app.snapshots.catch_up(events)
    batch = ReadingBatch()
    for event, record in items:
        batch.add(event, record)  # type: ignore[arg-type]
    for step in steps:
        await step.process(batch)
    app.snapshots.processed(events)
    return [
        (o.catalog_name, o.key, o.source.message.offset, json.dumps(o.record)) for o in batch.out
    ]


def states(app: StreamApp) -> dict[str, dict[bytes, bytes]]:
    """Every replayed table as a snapshot of everything would write it."""
    app.snapshots.flush(everything=True)
    return {
        live.name: {k: v for k, v in live.table.data.items() if not k.startswith(b"\x00")}
        for live in app.snapshots.tables
    }


def reader(items: list[tuple[Event, dict[str, Any]]], asked: list[tuple[int, int, int]]) -> Any:
    def read(topic: str, partition: int, start: int, end: int) -> Iterator[list[ReplayMessage]]:
        asked.append((partition, start, end))
        found = [
            ReplayMessage(topic, e.message.partition, e.message.offset, 0.0, None, e.message.value)
            for e, _ in items
            if e.message.partition == partition and start <= e.message.offset < end
        ]
        for i in range(0, len(found), 7):  # in chunks, as Kafka hands them
            yield found[i : i + 7]

    return read


async def test_replayed_tables_are_written_only_at_snapshots_with_their_marker(
    tmp_path: Path,
) -> None:
    app, steps = worker(tmp_path, every=3)
    assert {live.name for live in app.snapshots.tables} == {"rollups", "anomaly_devices"}
    assert all(live.replayed for live in app.snapshots.tables)
    rollups = next(live for live in app.snapshots.tables if live.name == "rollups")
    table: DictTable = rollups.table  # type: ignore[assignment]
    written = []
    for items in batches()[:5]:
        await run(app, steps, items)
        written.append(app.snapshots.flush())  # the commit after each batch
    # Commit 1 is the partitions' first: only markers (offset 0), in each of the two tables.
    # Then every third commit, spread: partition 1 at commit 3, partition 0 at commit 4, each
    # with its 2 devices' states and its marker, in each of the two tables.
    assert written == [4, 0, 6, 6, 0]
    assert table.writes == 2 + 3 + 3
    after = [b[-1][0].message.offset + 1 for b in batches()]  # 20 readings/partition/batch
    assert table.data[marker_key(0)] == str(after[3]).encode()  # commit 4
    assert table.data[marker_key(1)] == str(after[2]).encode()  # commit 3
    assert app.snapshots.flush(everything=True) == 12  # a stop: whatever changed since
    assert app.snapshots.flush(everything=True) == 0  # nothing changed: nothing written


@pytest.mark.parametrize("anomaly", [ANOMALY, None], ids=["robust_zscore", "default_detector"])
async def test_a_worker_that_replays_from_the_snapshot_ends_where_one_run_ends(
    tmp_path: Path, anomaly: dict[str, Any] | None
) -> None:
    everything = batches()
    one_run, one_steps = worker(tmp_path / "one", anomaly=anomaly)
    outputs_one_run = []
    for n, items in enumerate(everything):
        out = await run(one_run, one_steps, items)
        one_run.snapshots.flush()
        if n >= 5:
            outputs_one_run.extend(out)

    killed, killed_steps = worker(tmp_path / "killed", anomaly=anomaly)
    for items in everything[:5]:
        await run(killed, killed_steps, items)
        killed.snapshots.flush()  # partition 1's snapshot at commit 3, 0's at 4; then SIGKILL

    again, again_steps = worker(tmp_path / "again", anomaly=anomaly)
    for before, after in zip(killed.snapshots.tables, again.snapshots.tables, strict=True):
        after.table.data.update(before.table.data)  # type: ignore[attr-defined]  # what was committed
    asked: list[tuple[int, int, int]] = []
    again.snapshots.read = reader([i for items in everything for i in items], asked)
    outputs_again = []
    for items in everything[5:]:
        outputs_again.extend(await run(again, again_steps, items))
        again.snapshots.flush()

    assert asked == [(0, 80, 100), (1, 60, 100)]  # from each partition's marker to commit 5
    assert again.snapshots.replayed == 60
    assert outputs_again == outputs_one_run  # nothing repeated, nothing missing
    if anomaly is not None:  # the default detector is still warming up on 130 s of data
        assert any(c == "anomalies" for c, *_ in outputs_again)
    assert any(c == "rollups" for c, *_ in outputs_again)
    assert states(again) == states(one_run)
    # The anomalies counter counts what was sent, not what the replay found again.
    sent = sum(1 for c, *_ in outputs_again if c == "anomalies")
    assert sum(again.metrics.anomalies.values.values()) == sent


async def test_a_revoked_partition_is_caught_up_again_when_it_comes_back(tmp_path: Path) -> None:
    everything = batches()
    app, steps = worker(tmp_path, every=100)
    for items in everything[:2]:
        await run(app, steps, items)
        app.snapshots.flush()  # commit 1: markers at offset 0; no snapshot in 100 commits
    asked: list[tuple[int, int, int]] = []
    app.snapshots.read = reader([i for items in everything for i in items], asked)
    app.snapshots.forget([1])
    for live in app.snapshots.tables:
        live.forget([1])
    await run(app, steps, everything[2])
    assert asked == [(1, 0, 40)]  # only the partition that came back, from its marker


async def test_a_table_written_by_an_older_worker_has_no_marker_and_is_not_replayed(
    tmp_path: Path,
) -> None:
    app, steps = worker(tmp_path)
    asked: list[tuple[int, int, int]] = []
    app.snapshots.read = reader([], asked)
    await run(app, steps, batches()[3])  # starts mid-topic, no marker: nothing to replay
    assert asked == [] and app.snapshots.replayed == 0


@pytest.mark.parametrize(
    ("every", "records", "replayed"),
    [
        # Commit 1 writes the markers (2 partitions x 2 tables), then every commit is a
        # snapshot: 7 x (4 devices x 2 tables + 2 markers x 2 tables); the kill after commit 8
        # leaves nothing to replay.
        (1, 4 + 7 * 12, 0),
        # Commit 1 writes the markers (offset 0); the first snapshots would come at commits
        # 10 and 11: all 160 readings of each partition are read again.
        (10, 4, 2 * 160),
    ],
)
async def test_snapshot_every_commits_sets_the_state_written_and_the_replay_after_a_kill(
    tmp_path: Path, every: int, records: int, replayed: int
) -> None:
    everything = batches()
    killed, steps = worker(tmp_path / "killed", every=every)
    assert killed.snapshots.every == every  # from streams.snapshot_every_commits
    written = 0
    for items in everything[:8]:
        await run(killed, steps, items)
        written += killed.snapshots.flush()  # a commit after each batch, then SIGKILL
    assert written == records

    again, again_steps = worker(tmp_path / "again", every=every)
    for before, after in zip(killed.snapshots.tables, again.snapshots.tables, strict=True):
        after.table.data.update(before.table.data)  # type: ignore[attr-defined]
    again.snapshots.read = reader([i for items in everything for i in items], [])
    await run(again, again_steps, everything[8])
    assert again.snapshots.replayed == replayed


@pytest.mark.parametrize("every", [0, 1001])
def test_snapshot_every_commits_out_of_range_is_refused_naming_the_field(every: int) -> None:
    with pytest.raises(ValidationError, match="snapshot_every_commits"):
        StreamSettings.model_validate({"snapshot_every_commits": every})


def rul_worker(tmp_path: Path, store: Path, every: int = 3) -> tuple[StreamApp, list[Any]]:
    """The three replayed steps, RUL's model (temp, vib) saved in ``store``: a prediction at
    most every 15 s of event time per device, 3 devices per model call."""
    rul = {"store_dir": str(store), "models": {}, "feature_models": ["plant"]}
    rul |= {"min_interval_s": 15, "batch_size": 3}
    settings: dict[str, Any] = {"rollups": {"windows_s": [60]}, "anomaly": ANOMALY, "rul": rul}
    app, steps = build(
        tmp_path, ["rollups", "anomaly", "rul"], snapshot_every_commits=every, **settings
    )
    app.snapshots.decode = json.loads
    return app, [steps["rollups"], steps["anomaly"], steps["rul"]]


def cut(items: list[tuple[Event, dict[str, Any]]], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def test_rul_windows_rebuilt_by_replay_equal_one_run_cut_into_other_batches(
    tmp_path: Path,
) -> None:
    from sentio_iot.streams.rul.model import TrainingOptions
    from sentio_iot.streams.rul.model import build as build_network
    from sentio_iot.streams.rul.preprocessing import Preprocessing
    from sentio_iot.streams.rul.store import ModelStore

    store = tmp_path / "models"
    prep = Preprocessing(
        ("temp", "vib"), 5, 100.0, "hours", minimum=[[0.0, 0.0]], maximum=[[100.0, 4.0]]
    )
    network = build_network(5, 2, 100.0, 1, TrainingOptions(filters=4, dense=4))
    ModelStore(store, shipped=None).save("plant", network, prep, {})
    items = plant()
    kill = 50 * len(DEVICES)  # after 50 s of readings

    # One uninterrupted run, cut into batches of 13 readings up to the kill, then of 40.
    one_run, one_steps = rul_worker(tmp_path / "one", store)
    for part in cut(items[:kill], 13):
        await run(one_run, one_steps, part)
        one_run.snapshots.flush()
    outputs_one_run = []
    for part in cut(items[kill:], 40):
        outputs_one_run.extend(await run(one_run, one_steps, part))
        one_run.snapshots.flush()

    # Batches of 40: partition 1's snapshot at commit 3 (marker 60), 0's at 4 (80); SIGKILL.
    killed, killed_steps = rul_worker(tmp_path / "killed", store)
    for part in cut(items[:kill], 40):
        await run(killed, killed_steps, part)
        killed.snapshots.flush()
    rul_table = next(live.table for live in killed.snapshots.tables if live.name == "rul")
    assert rul_table.data[marker_key(0)] == b"80"  # type: ignore[attr-defined]
    predicted = sum(killed.metrics.rul_predictions.values.values())

    again, again_steps = rul_worker(tmp_path / "again", store)
    assert {live.name for live in again.snapshots.tables} == {"rollups", "anomaly_devices", "rul"}
    for before, after in zip(killed.snapshots.tables, again.snapshots.tables, strict=True):
        after.table.data.update(before.table.data)  # type: ignore[attr-defined]
    asked: list[tuple[int, int, int]] = []
    again.snapshots.read = reader(items, asked)  # chunks of 7
    outputs_again = []
    for part in cut(items[kill:], 40):
        outputs_again.extend(await run(again, again_steps, part))
        again.snapshots.flush()

    assert asked == [(0, 80, 100), (1, 60, 100)]
    assert states(again) == states(one_run)  # windows, their due times, ages, baselines
    sent = [o for o in outputs_again if o[0] == "rul"]
    assert len(sent) == 20 and outputs_again == outputs_one_run  # 4 devices x 80 s / 15 s
    # The replay neither predicted nor counted: the counter counts what was sent.
    assert sum(again.metrics.rul_predictions.values.values()) == len(sent)
    assert predicted > 0
