"""The alerts agent: anomalies, RUL predictions, device events and operators' commands ->
Alert state changes, one slot per (device, type) in the ``alerts`` table, exactly once.

Inputs are keyed by device id and co-partitioned, so every input of a device (and its
commands, keyed by device id too) reaches the same partition and the same slot. The rules
and life cycle are :class:`~sentio_iot.streams.alerting.engine.AlertEngine`, Kafka-free.

Quiet periods, ``for_s`` and suppressed repeats need time to pass without input. As in the
device-state agent, a timer only appends ticks (the wall time) to an internal ticks topic,
one per owned partition; the agent consumes them beside its inputs, so a timed transition
commits with its table change and its output in one transaction. A partition that is
catching up (an input lagging by more than one batch) skips its ticks: the backlog, not the
wall clock, should move its alerts.

A tick of partition p visits p's stored slots. The in-memory table holds every partition's,
so the agent remembers each key's partition (:class:`Partitions`: a key's partition never
changes, its inputs are keyed by device) and parses only p's slots: at 10,000 pumps with an
open RUL alert each, parsing every slot at every partition's tick was a quarter of the
worker's time (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import faust
from faust.types import TP, TableT

from sentio_iot.records import now_us
from sentio_iot.streams.alerting.engine import AlertEngine
from sentio_iot.streams.alerting.lifecycle import AlertRecord, Slot, slot_key
from sentio_iot.streams.alerting.rules import ALERT_TYPES, ANOMALY, DEVICE_OFFLINE, RUL_LOW
from sentio_iot.streams.app import Event, StreamApp
from sentio_iot.streams.tracing import batch_span, context_headers

log = logging.getLogger(__name__)

AGENT = "alerts"
INPUTS = ("anomalies", "rul", "device-events", "alert-commands")
TYPE_OF_INPUT = {"anomalies": ANOMALY, "rul": RUL_LOW, "device-events": DEVICE_OFFLINE}


def attach(app: StreamApp) -> None:
    """Declare the ``alerts`` table, the ticks topic and timer, and the agent."""
    settings = app.config.streams
    engine = AlertEngine(settings.alerts)
    table = app.table("alerts", source="anomalies")
    for name in INPUTS:
        app.topic(name)
        app.serde(name)
    app.serde("alerts")
    app.serde("deadletter")
    ticks = app.internal_topic_name("alerts-ticks", partitions_like="anomalies")
    catalog_of = {app.topic_name(name): name for name in INPUTS}
    source = app.faust.topic(
        *catalog_of, ticks, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    anomalies = app.topic_name("anomalies")

    partitions = Partitions()

    async def alerts(stream: faust.StreamT[bytes]) -> None:
        async for events in app.batches(stream):
            await process_batch(
                app, table, engine, events, catalog_of, settings.batch_max, partitions
            )

    async def tick() -> None:
        """Append the wall time to the ticks of every input partition this worker owns."""
        value = str(now_us()).encode()
        for tp in sorted(app.faust.consumer.assignment()):
            if tp.topic == anomalies:
                await app.faust.producer.send(ticks, None, value, tp.partition, None, None)

    app.faust.agent(source, name=f"sentio.{AGENT}")(alerts)
    app.faust.timer(settings.alerts.check_interval_s, name=f"sentio.{AGENT}.tick")(tick)


class Partitions:
    """The partition of each slot key seen (read from or written to the table)."""

    def __init__(self) -> None:
        self._of: dict[bytes, int] = {}

    def get(self, key: bytes) -> int | None:
        return self._of.get(key)

    def learn(self, key: bytes, partition: int) -> None:
        self._of[key] = partition


class Batch:
    """The slots a batch touched (loaded once, stored once) and the alerts to send."""

    def __init__(
        self, app: StreamApp, table: TableT[bytes, bytes], partitions: Partitions | None = None
    ) -> None:
        self.app, self.table = app, table
        self.partitions = Partitions() if partitions is None else partitions
        self.slots: dict[str, tuple[Slot, Event]] = {}
        self.out: list[tuple[AlertRecord, Event]] = []

    def slot(self, device_id: str, alert_type: str, event: Event) -> Slot:
        key = slot_key(device_id, alert_type)
        if key in self.slots:
            found = self.slots[key][0]
        else:
            with self.app.in_partition_of(event):
                stored = self.table.get(key.encode())
            found = load(stored, device_id, alert_type, event.message.partition)
        self.slots[key] = (found, event)
        return found

    def emit(self, alerts: list[AlertRecord], event: Event) -> None:
        self.out.extend((alert, event) for alert in alerts)

    def store(self) -> None:
        for key, (slot, event) in self.slots.items():
            raw_key = key.encode()
            with self.app.in_partition_of(event):
                if not slot.idle:
                    self.table[raw_key] = dump(slot)
                    self.partitions.learn(raw_key, slot.partition)
                elif self.table.get(raw_key) is not None:
                    del self.table[raw_key]

    def slots_of_partition(self, partition: int, tick: Event) -> Iterator[Slot]:
        """The open slots of ``partition``: this batch's newest, else the table's (only
        those parsed, and slots of unknown partition once, to learn it)."""
        for slot, _event in list(self.slots.values()):
            if slot.partition == partition:
                self.slots[slot.key] = (slot, tick)
                yield slot
        with self.app.in_partition_of(tick):
            stored = list(self.table.items())
        known = self.partitions
        for raw_key, value in stored:
            of = known.get(raw_key)
            if of is not None and of != partition:
                continue
            try:
                slot = Slot.from_state(json.loads(value))
            except (TypeError, ValueError, KeyError):
                continue  # unreadable: replaced when its next input loads it
            known.learn(raw_key, slot.partition)
            if slot.partition == partition and slot.key not in self.slots:
                self.slots[slot.key] = (slot, tick)
                yield slot


async def process_batch(
    app: StreamApp,
    table: TableT[bytes, bytes],
    engine: AlertEngine,
    events: Sequence[Event],
    catalog_of: dict[str, str],
    max_lag: int,
    partitions: Partitions | None = None,
) -> None:
    """Apply a batch of inputs and ticks; store each touched slot once; send the alerts."""
    app.metrics.events.inc(AGENT, by=len(events))
    batch = Batch(app, table, partitions)
    with batch_span(AGENT, (e.message.headers for e in events)) as span:
        for event in events:
            name = catalog_of.get(event.message.topic)
            if name is None:
                on_tick(app, engine, batch, event, catalog_of, max_lag)
                continue
            record = await app.decode(AGENT, event, name)
            if record is not None:
                apply(engine, batch, name, record, event)
        batch.store()
        headers = context_headers(span)
        span.set_attribute("sentio.alerts.count", len(batch.out))
        for alert, event in batch.out:
            log.info(
                "alert %s/%s %s %s",
                alert["device_id"],
                alert["type"],
                alert["status"],
                alert["severity"],
            )
            key = slot_key(alert["device_id"], alert["type"])
            await app.send(AGENT, "alerts", key, alert, source=event, headers=headers)
            app.metrics.alerts.inc(alert["severity"], alert["status"])


def apply(
    engine: AlertEngine, batch: Batch, name: str, record: dict[str, Any], event: Event
) -> None:
    device_id = str(record["device_id"])
    heard_us = int(event.message.timestamp * 1_000_000)
    if name == "alert-commands":
        if record["type"] not in ALERT_TYPES:
            log.warning("command for unknown alert type %s/%s ignored", device_id, record["type"])
            return
        slot = batch.slot(device_id, record["type"], event)
        batch.emit(engine.on_command(slot, record), event)
        return
    slot = batch.slot(device_id, TYPE_OF_INPUT[name], event)
    if name == "anomalies":
        batch.emit(engine.on_anomaly(slot, record, heard_us), event)
    elif name == "rul":
        batch.emit(engine.on_rul(slot, record, heard_us), event)
    else:
        batch.emit(engine.on_device_event(slot, record, heard_us), event)


def on_tick(
    app: StreamApp,
    engine: AlertEngine,
    batch: Batch,
    tick: Event,
    catalog_of: dict[str, str],
    max_lag: int,
) -> None:
    """A tick of partition p: the timed transitions of p's slots, unless p is catching up."""
    partition = tick.message.partition
    if any(lagging(app, TP(topic, partition), max_lag) for topic in catalog_of):
        return
    wall_us = int(tick.message.value or b"0")
    for slot in list(batch.slots_of_partition(partition, tick)):
        batch.emit(engine.on_tick(slot, wall_us), tick)


def lagging(app: StreamApp, tp: TP, max_lag: int) -> bool:
    consumer = app.faust.consumer
    highwater = consumer.highwater(tp)
    read: Any = getattr(consumer, "_read_offset", {}).get(tp)
    if highwater is None or read is None:
        return False
    return bool(highwater - (read + 1) > max_lag)


def load(stored: bytes | None, device_id: str, alert_type: str, partition: int) -> Slot:
    """The stored slot, or a new one (also for a state this version cannot read)."""
    if stored is not None:
        try:
            return Slot.from_state(json.loads(stored))
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("alert state of %s/%s dropped: %r", device_id, alert_type, exc)
    return Slot(device_id, alert_type, partition)


def dump(slot: Slot) -> bytes:
    return json.dumps(slot.to_state(), separators=(",", ":")).encode()
