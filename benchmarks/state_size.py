"""State per (device, metric): bytes in memory and on the changelog, for each stateful step.

    .venv/bin/python -m benchmarks.state_size [--devices 100] [--at 60,600] [--step-s 10]

Builds the stream worker's app (``StreamApp``, no broker needed) once per per-reading step
(rollups, device_state, anomaly with the configured detector, rul) and drives the real step
(``step.process``) with batches of pump readings (five metrics, label ``kind: pump``, the
readings of ``benchmarks.memory_soak``): one reading per device per round, ``--step-s``
seconds of event time apart. Its tables are plain dicts (as Faust's ``memory://`` store is),
so a commit's writes (``LiveStates.flush``) can be read back. After ``--at`` readings per
series it reports, per (device, metric) (a per-device state divided by the five metrics):

- live: what the step's live states hold in memory (tracemalloc, allocated since the
  measured devices' first reading and still held, the collector run first);
- record: the MessagePack record the step writes to its changelog per commit (or snapshot);
- table: what the worker's in-memory table keeps of that record (bytes object, key and dict
  slot, ``sys.getsizeof``): a worker holds both the live state and the last record written.

The alerts agent is not a per-reading step: its slots (one per device and alert type, held
only while something is pending or open) are fed the anomalies and RUL predictions the steps
emitted, through ``AlertEngine`` as the agent does, and their JSON records measured the same
way. ``--where`` adds the lines that allocated most of the anomaly state.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentio_iot.config import SentioConfig
from sentio_iot.records import Metric, Reading
from sentio_iot.streams.agents import alerts as alerts_agent
from sentio_iot.streams.alerting.engine import AlertEngine
from sentio_iot.streams.app import StreamApp
from sentio_iot.streams.readings import Output, ReadingBatch

STEPS = ("rollups", "device_state", "anomaly", "rul")
S = 1_000_000
T0 = 1_796_601_600 * S  # 2026-12-07 00:00 UTC
# (name, unit, low, high): inside the ranges the shipped plant_pump model was trained on
PUMP = (
    ("flow", "m3/h", 60.0, 180.0),
    ("pressure", "bar", 4.0, 8.0),
    ("vibration", "mm/s", 2.0, 10.0),
    ("temperature", "C", 45.0, 85.0),
    ("current", "A", 18.0, 48.0),
)


def pump_reading(device: str, d: int, step: int, ts_us: int) -> Reading:
    """The ``step``-th reading of pump number ``d``: a slow cycle per metric and device, a
    little noise, and now and then a vibration spike (about one reading in 1,000)."""
    spike = (step * 7919 + d * 104_729) % 997 == 0
    metrics = []
    for k, (name, unit, low, high) in enumerate(PUMP):
        mid, half = (low + high) / 2, (high - low) / 4
        value = mid + half * math.sin(step / 40 + d + k) + ((step * 31 + d * 17 + k) % 11) * 0.01
        if spike and k == 2:
            value = high * 1.4
        metrics.append(Metric(name, value, unit))
    labels = {"kind": "pump", "line": f"line-{d % 20}"}
    return Reading(device, ts_us, metrics, "soak", labels)


@dataclass
class Message:
    """What the steps read of a Kafka message (as ``faust_ext.Event.message``)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Event:
    message: Message


class DictTable:
    """What ``LiveStates`` needs of a Faust table; a dict, as Faust's ``memory://`` store."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def items(self) -> list[tuple[bytes, bytes]]:
        return list(self.data.items())


@dataclass
class Row:
    """One step at one age: bytes per (device, metric) and per stored key."""

    step: str
    readings: int
    keys: int
    series: int
    live: float  # bytes in memory, all keys
    records: list[int]  # changelog record bytes, one per key
    table: float  # bytes the in-memory table keeps, all keys

    def per_series(self, total: float) -> float:
        return total / self.series if self.series else 0.0


def build(step: str, work: Path) -> tuple[StreamApp, Any]:
    config = SentioConfig.model_validate(
        {"topics": {"prefix": "size."}, "streams": {"app_id": "size", "state_dir": str(work)}}
    )
    app = StreamApp(config, agents=[step], web_port=6199)
    [found] = app._reading_steps
    for live in app._live:
        live.table = DictTable(live.name)  # type: ignore[assignment]
    return app, found


def rounds(devices: list[str], first: int, last: int, step_s: float) -> Iterator[ReadingBatch]:
    """One batch per round: a reading from every device, ``step_s`` apart in event time."""
    for step in range(first, last):
        ts = T0 + int(step * step_s * S)
        batch = ReadingBatch()
        for d, device in enumerate(devices):
            event = Event(Message("size.readings", 0, step * len(devices) + d, ts / S))
            batch.add(event, pump_reading(device, d, step, ts).to_record())  # type: ignore[arg-type]
        yield batch


def table_bytes(data: dict[bytes, bytes]) -> float:
    """What a dict of records costs: the keys, the values and the dict's own slots."""
    return sys.getsizeof(data) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in data.items())


class AlertSlots:
    """The alerts agent's table for the records one step emits: a slot per (device, type),
    stored as the agent stores it (JSON) while it is not idle, dropped when it is."""

    def __init__(self) -> None:
        self.engine = AlertEngine(SentioConfig().streams.alerts)
        self.data: dict[bytes, bytes] = {}

    def feed(self, outputs: list[Output]) -> None:
        engine = self.engine
        for out in outputs:
            kind = alerts_agent.TYPE_OF_INPUT.get(out.catalog_name)
            if kind is None:
                continue  # rollups: no alerts
            record = out.record
            device = str(record["device_id"])
            key = f"{device}/{kind}".encode()
            slot = alerts_agent.load(self.data.get(key), device, kind, 0)
            if out.catalog_name == "anomalies":
                engine.on_anomaly(slot, record, record["ts"])
            elif out.catalog_name == "rul":
                engine.on_rul(slot, record, record["ts"])
            else:
                engine.on_device_event(slot, record, record["ts"])
            if slot.idle:
                self.data.pop(key, None)
            else:
                self.data[key] = alerts_agent.dump(slot)


async def feed(step: Any, batches: Iterator[ReadingBatch], slots: AlertSlots) -> None:
    """Run ``step`` over ``batches`` (a function, so that no batch outlives the loop)."""
    for batch in batches:
        await step.process(batch)
        slots.feed(batch.out)


async def measure(
    step_name: str, devices: int, ages: list[int], step_s: float, work: Path, where: bool
) -> tuple[list[Row], list[Row]]:
    """Rows for ``step_name`` at each age, and for the alert slots of what it emitted."""
    app, step = build(step_name, work / step_name)
    # first calls (the RUL model's graph for this batch shape, caches) out of the trace
    warm = [f"warm-{d}" for d in range(devices)]
    for batch in rounds(warm, 0, 3, step_s):
        await step.process(batch)
    for live in app._live:
        live.flush()
    names = [f"pump-{d:05d}" for d in range(devices)]
    slots = AlertSlots()
    rows: list[Row] = []
    alert_rows: list[Row] = []
    series = devices * len(PUMP)
    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.get_traced_memory()[0]
    done = 0
    for age in ages:
        await feed(step, rounds(names, done, age, step_s), slots)
        done = age
        records: list[int] = []
        table = 0.0
        for live in app._live:  # a commit: every state written once, its events let go
            live.flush()
            data = live.table.data  # type: ignore[attr-defined]
            ours = {k: v for k, v in data.items() if not k.startswith(b"warm-")}
            records += [len(v) for v in ours.values()]
            table += table_bytes(ours)
            data.clear()  # measured by size: out of the trace
            del ours
        gc.collect()
        alerts = table_bytes(slots.data)  # traced too, but the alerts agent's, not this step's
        live_bytes = tracemalloc.get_traced_memory()[0] - base - alerts
        if where and step_name == "anomaly":
            print(f"anomaly state after {age} readings: largest allocation sites")
            for stat in tracemalloc.take_snapshot().statistics("lineno")[:8]:
                print(f"  {stat}")
        rows.append(Row(step_name, age, len(records), series, live_bytes, records, table))
        held = [len(v) for v in slots.data.values()]
        alert_rows.append(Row("alerts", age, len(held), series, 0.0, held, alerts))
    tracemalloc.stop()
    return rows, alert_rows


def print_table(rows: list[Row], devices: int, step_s: float) -> None:
    print()
    print(
        f"state per (device, metric): {devices} pumps x {len(PUMP)} metrics, a reading every "
        f"{step_s:g} s of event time; per-device states divided by {len(PUMP)}"
    )
    head = (
        f"{'step':<14}{'readings':>9}{'keys':>6}{'live B':>10}{'record B':>10}"
        f"{'table B':>10}{'in memory B':>13}{'record B/key':>14}"
    )
    print(head)
    ages = sorted({r.readings for r in rows})
    for age in ages:
        total = [0.0, 0.0, 0.0]
        for row in (r for r in rows if r.readings == age):
            record = sum(row.records)
            per_key = record / row.keys if row.keys else 0.0
            figures = (row.per_series(row.live), row.per_series(record), row.per_series(row.table))
            total = [t + f for t, f in zip(total, figures, strict=True)]
            print(
                f"{row.step:<14}{age:>9}{row.keys:>6}{figures[0]:>10,.0f}{figures[1]:>10,.0f}"
                f"{figures[2]:>10,.0f}{figures[0] + figures[2]:>13,.0f}{per_key:>14,.0f}"
            )
        print(
            f"{'all steps':<14}{age:>9}{'':>6}{total[0]:>10,.0f}{total[1]:>10,.0f}"
            f"{total[2]:>10,.0f}{total[0] + total[2]:>13,.0f}"
        )
        fleet = (total[0] + total[2]) * 50_000 / 1e6
        print(f"  10,000 devices x 5 metrics at {age} readings: {fleet:,.0f} MB of state")


async def run(devices: int, ages: list[int], step_s: float, where: bool = False) -> list[Row]:
    """Every step's rows, in STEPS order, then the alert slots' (the agent keeps no live
    objects between batches: its table only)."""
    rows: list[Row] = []
    alerts = {age: Row("alerts", age, 0, devices * len(PUMP), 0.0, [], 0.0) for age in ages}
    with tempfile.TemporaryDirectory(prefix="state-size-") as work:
        for name in STEPS:
            t = time.perf_counter()
            found, slots = await measure(name, devices, ages, step_s, Path(work), where)
            rows += found
            for row in slots:
                total = alerts[row.readings]
                total.keys += row.keys
                total.records += row.records
                total.table += row.table
            print(f"  {name}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return rows + list(alerts.values())


def main() -> None:
    import asyncio

    parser = argparse.ArgumentParser(prog="python -m benchmarks.state_size", description=__doc__)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--at", default="60,600", help="readings per series to report at, rising")
    parser.add_argument("--step-s", type=float, default=10.0, help="event seconds between readings")
    parser.add_argument("--where", action="store_true", help="where the anomaly state is allocated")
    args = parser.parse_args()
    ages = sorted(int(a) for a in args.at.split(","))
    rows = asyncio.run(run(args.devices, ages, args.step_s, args.where))
    print_table(rows, args.devices, args.step_s)


if __name__ == "__main__":
    main()
