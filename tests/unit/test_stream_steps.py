"""The per-reading steps and their live state, without Kafka: exact numbers from known batches.

A StreamApp is built (no broker needed) and its steps run on ReadingBatches of events made
here; each table is swapped for a dict, so what a commit writes can be read back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faust.types import TP

from sentio_iot.config import SentioConfig
from sentio_iot.records import Metric, Reading
from sentio_iot.streams.app import StreamApp
from sentio_iot.streams.detectors.surprise import SurpriseDetector
from sentio_iot.streams.readings import ReadingBatch
from sentio_iot.streams.redelivery import RedeliveryGuard
from sentio_iot.streams.state import LiveStates, dump_state, load_state

S = 1_000_000
T0 = 1_700_000_040 * S


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: float = 1_700_000_040.0
    value: bytes | None = None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class Event:
    message: Message


@dataclass
class DictTable:
    """What LiveStates needs of a Faust table; ``writes`` counts what commits wrote."""

    name: str
    data: dict[bytes, bytes] = field(default_factory=dict)
    writes: int = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.writes += 1

    def items(self) -> list[tuple[bytes, bytes]]:
        return list(self.data.items())


def build(tmp_path: Path, agents: list[str], **streams: Any) -> tuple[StreamApp, dict[str, Any]]:
    config = SentioConfig.model_validate(
        {
            "topics": {"prefix": "x."},
            "streams": {"app_id": "app", "state_dir": str(tmp_path), **streams},
        }
    )
    app = StreamApp(config, agents=agents, web_port=6198)
    steps = {step.name: step for step in app._reading_steps}
    for live in app._live:
        live.table = DictTable(live.name)  # type: ignore[assignment]
    return app, steps


def batch_of(*readings: tuple[int, Reading]) -> ReadingBatch:
    batch = ReadingBatch()
    for offset, reading in readings:
        event = Event(Message("x.readings", 0, offset))
        batch.add(event, reading.to_record())  # type: ignore[arg-type]
    return batch


def reading(device: str, second: int, **values: float) -> Reading:
    metrics = [Metric(name, value, "u") for name, value in values.items()]
    return Reading(device, T0 + second * S, metrics, "simulate", {"line": "a"})


async def test_rollups_fold_batches_into_live_state_and_write_each_key_once_per_commit(
    tmp_path: Path,
) -> None:
    app, steps = build(tmp_path, ["rollups"], rollups={"windows_s": [60], "grace_s": 0})
    first = batch_of(*[(s, reading("press-1", s, force=float(s))) for s in range(40)])
    await steps["rollups"].process(first)
    assert first.out == []  # the window is still open
    second = batch_of(*[(s, reading("press-1", s, force=float(s))) for s in range(40, 61)])
    await steps["rollups"].process(second)
    [out] = second.out
    assert (out.agent, out.catalog_name, out.key) == ("rollups", "rollups", "press-1")
    assert (out.record["count"], out.record["sum"], out.record["max"]) == (60, 1770.0, 59.0)
    assert out.source.message.offset == 60  # sent in the transaction of the reading that closed it

    live = app._live[0]
    assert live.table.writes == 0 and live.dirty == 1  # nothing written between commits
    assert live.flush() == 1 and live.table.writes == 1
    assert live.flush() == 0  # nothing changed since
    stored = load_state(live.table.data[b"press-1"])
    assert stored["windows"][0]["count"] == 1  # the window the reading at 60 s opened


async def test_anomaly_keeps_one_compact_record_per_device_and_restores_it(tmp_path: Path) -> None:
    settings = {
        "detector": "robust_zscore",
        "params": {"warmup": 10},
        "threshold": 0.9,
        "refractory_s": 0,
    }
    app, steps = build(tmp_path, ["anomaly"], anomaly=settings)
    noise = [10.0, 10.2, 9.8, 10.1, 9.9]
    values = noise * 4 + [50.0]
    batch = batch_of(*[(s, reading("pump-1", s, temp=v, vib=1.0)) for s, v in enumerate(values)])
    await steps["anomaly"].process(batch)
    assert [(o.record["metric"], o.record["ts"], o.record["value"]) for o in batch.out] == [
        ("temp", T0 + 20 * S, 50.0)
    ]
    live = app._live[0]
    assert live.flush() == 1  # one record for both series of the device
    stored = load_state(live.table.data[b"pump-1"])
    assert sorted(stored["series"]) == ["temp", "vib"]
    assert "params" not in json.dumps(stored)  # named once, by detector_version

    # A worker that takes the partition over continues from the stored record.
    _, again = build(tmp_path / "again", ["anomaly"], anomaly=settings)
    step = again["anomaly"]
    step.states.table.data.update(live.table.data)
    spike = batch_of((21, reading("pump-1", 21, temp=50.0, vib=1.0)))
    await step.process(spike)
    assert spike.out == []  # still in the episode the stored state remembers: not again
    calm = batch_of((22, reading("pump-1", 22, temp=10.0, vib=1.0)))
    await step.process(calm)
    spike_again = batch_of((23, reading("pump-1", 23, temp=60.0, vib=1.0)))
    await step.process(spike_again)
    assert [o.record["value"] for o in spike_again.out] == [60.0]  # warm at once: no warm-up


def test_live_states_forget_revoked_partitions_and_reload_from_the_table(tmp_path: Path) -> None:
    table = DictTable("t")
    live: LiveStates[dict[str, int]] = LiveStates(
        table,  # type: ignore[arg-type]
        lambda raw: json.loads(raw),
        lambda state: json.dumps(state).encode(),
    )
    on_0 = Event(Message("x.readings", 0, 5))
    on_1 = Event(Message("x.readings", 1, 9))
    live.put("a", {"n": 1}, on_0)  # type: ignore[arg-type]
    live.put("b", {"n": 2}, on_1)  # type: ignore[arg-type]
    assert live.flush() == 2
    live.put("a", {"n": 3}, on_0)  # type: ignore[arg-type]  # not flushed: aborts with the txn
    live.forget([0])
    assert "a" not in live and "b" in live
    assert live.get("a", on_0) == {"n": 1}  # type: ignore[arg-type]  # what was committed
    assert dict(live.of_partition(1)) == {"b": {"n": 2}}


def test_the_guard_skips_events_delivered_again_until_the_partition_is_revoked() -> None:
    guard = RedeliveryGuard()
    first = [Event(Message("x.readings", 0, o)) for o in range(5)]
    assert guard.fresh(first) == first  # type: ignore[arg-type]
    again = [Event(Message("x.readings", 0, o)) for o in range(3, 8)]
    other = Event(Message("x.readings", 1, 0))
    fresh = guard.fresh([*again, other])  # type: ignore[list-item]
    assert [(e.message.partition, e.message.offset) for e in fresh] == [
        (0, 5),
        (0, 6),
        (0, 7),
        (1, 0),
    ]
    assert guard.skipped == 2
    guard.forget([TP("x.readings", 0)])
    assert guard.fresh(first[:1]) == first[:1]  # type: ignore[arg-type]  # from the commit again


def test_state_bytes_round_trip_exactly_and_older_json_states_still_load() -> None:
    detector = SurpriseDetector()
    for i in range(400):
        detector.update(T0 + i * S, 50.0 + math.sin(i / 7.0))
    memory = {"v": "surprise-2", "series": {"temp": detector.memory(), "n": 3, "gone": None}}
    raw = dump_state(memory)
    assert load_state(raw) == memory
    compact_json = json.dumps(memory, separators=(",", ":"))
    assert len(raw) < 0.8 * len(compact_json)  # floats in 9 bytes, not ~18 characters
    restored = SurpriseDetector.from_memory(detector.params, load_state(raw)["series"]["temp"])
    for i in range(400, 460):  # continues exactly as the live one
        assert restored.update(T0 + i * S, 60.0 - i % 5) == detector.update(
            T0 + i * S, 60.0 - i % 5
        )
    assert load_state(json.dumps({"n": 1, "x": [1.5]}).encode()) == {"n": 1, "x": [1.5]}
    assert load_state(b'{"x": NaN}')["x"] != load_state(b'{"x": NaN}')["x"]  # json.dumps wrote NaN
    assert load_state(b"[1, 2]") == [1, 2]
