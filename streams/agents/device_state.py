"""The device-state agent: last values, last-seen and online/offline per device, exactly once.

Readings update each device's :class:`~sentio_iot.streams.device_state.DeviceState` in the
``device_state`` table (one write per device per batch). Offline detection needs the wall
clock (a silent device produces no events), but a plain ``app.timer`` that sent OFFLINE
events would act outside any Kafka transaction. So a timer only appends a tick (the wall time)
to an internal ticks topic, one message per source partition this worker owns; the agent
consumes the ticks beside the readings, partition by partition, and decides OFFLINE inside the
stream: the table change, the DeviceEvent and the tick's offset commit together, and a tick
replayed after a crash makes the same decision once.

A worker that is catching up (readings lag above one batch on that partition) skips the tick:
its devices may well have spoken in the backlog.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import faust
from faust.types import TP, TableT

from sentio_iot.records import DeviceEvent, now_us
from sentio_iot.streams.app import Event, StreamApp
from sentio_iot.streams.device_state import DeviceState, DeviceStateTracker
from sentio_iot.streams.tracing import batch_span, context_headers

log = logging.getLogger(__name__)

AGENT = "device_state"


def attach(app: StreamApp) -> None:
    """Declare the ``device_state`` table, the ticks topic, the tick timer and the agent."""
    settings = app.config.streams
    rules = settings.device_state
    tracker = DeviceStateTracker(rules.offline_after_s, rules.offline_factor, rules.offline_floor_s)
    table = app.table("device_state")
    readings = app.topic_name("readings")
    ticks = app.internal_topic_name("device_state-ticks")
    app.serde("readings")
    app.serde("device-events")
    app.serde("deadletter")
    source = app.faust.topic(
        readings, ticks, key_type=bytes, value_type=bytes, value_serializer="raw"
    )

    async def device_state(stream: faust.StreamT[bytes]) -> None:
        async for events in app.batches(stream):
            await process_batch(app, table, tracker, events, ticks, settings.batch_max)

    async def tick() -> None:
        """Append the wall time to the ticks of every readings partition this worker owns."""
        value = str(now_us()).encode()
        for tp in sorted(app.faust.consumer.assignment()):
            if tp.topic == readings:
                await app.faust.producer.send(ticks, None, value, tp.partition, None, None)

    app.faust.agent(source, name=f"sentio.{AGENT}")(device_state)
    app.faust.timer(rules.check_interval_s, name=f"sentio.{AGENT}.tick")(tick)


async def process_batch(
    app: StreamApp,
    table: TableT[bytes, bytes],
    tracker: DeviceStateTracker,
    events: Sequence[Event],
    ticks: str,
    max_lag: int,
) -> None:
    """Readings update states, ticks look for silent devices; write and emit once per batch."""
    app.metrics.events.inc(AGENT, by=len(events))
    touched: dict[str, tuple[DeviceState, Event]] = {}
    emitted: list[tuple[DeviceEvent, Event]] = []
    with batch_span(AGENT, (e.message.headers for e in events)) as span:
        for event in events:
            if event.message.topic == ticks:
                check_silence(app, table, tracker, event, touched, emitted, max_lag)
                continue
            reading = await app.decode(AGENT, event, "readings")
            if reading is None:
                continue
            device_id = str(reading["device_id"])
            state = (
                touched[device_id][0]
                if device_id in touched
                else load(app, table, device_id, event)
            )
            heard_us = int(event.message.timestamp * 1_000_000)
            state, change = tracker.observe(state, reading, heard_us, event.message.partition)
            touched[device_id] = (state, event)
            if change is not None:
                emitted.append((change, event))
        for device_id, (state, event) in touched.items():
            with app.in_partition_of(event):
                table[device_id.encode()] = dump(state)
        headers = context_headers(span)
        for change, event in emitted:
            log.info("device %s %s", change.device_id, change.kind.value)
            await app.send(
                AGENT,
                "device-events",
                change.device_id,
                change.to_record(),
                source=event,
                headers=headers,
            )


def check_silence(
    app: StreamApp,
    table: TableT[bytes, bytes],
    tracker: DeviceStateTracker,
    tick: Event,
    touched: dict[str, tuple[DeviceState, Event]],
    emitted: list[tuple[DeviceEvent, Event]],
    max_lag: int,
) -> None:
    """On a tick of partition p: the devices of p silent past their timeout go OFFLINE."""
    partition = tick.message.partition
    if lagging(app, partition, max_lag):
        return
    now = int(tick.message.value or b"0")
    for state in states_of_partition(app, table, partition, tick, touched):
        change = tracker.check(state, now)
        if change is not None:
            touched[state.device_id] = (state, tick)
            emitted.append((change, tick))


def states_of_partition(
    app: StreamApp,
    table: TableT[bytes, bytes],
    partition: int,
    tick: Event,
    touched: dict[str, tuple[DeviceState, Event]],
) -> Iterator[DeviceState]:
    """The states of partition ``partition``: this batch's newest, else the table's."""
    seen: set[str] = set()
    for device_id, (state, _event) in touched.items():
        if state.partition == partition:
            seen.add(device_id)
            yield state
    with app.in_partition_of(tick):
        stored = list(table.values())
    for value in stored:
        state = DeviceState.from_state(json.loads(value))
        if state.partition == partition and state.device_id not in seen:
            yield state


def lagging(app: StreamApp, partition: int, max_lag: int) -> bool:
    consumer = app.faust.consumer
    tp = TP(app.topic_name("readings"), partition)
    highwater = consumer.highwater(tp)
    read: Any = getattr(consumer, "_read_offset", {}).get(tp)
    if highwater is None or read is None:
        return False
    return bool(highwater - (read + 1) > max_lag)


def load(
    app: StreamApp, table: TableT[bytes, bytes], device_id: str, event: Event
) -> DeviceState | None:
    with app.in_partition_of(event):
        stored = table.get(device_id.encode())
    return None if stored is None else DeviceState.from_state(json.loads(stored))


def dump(state: DeviceState) -> bytes:
    return json.dumps(state.to_state(), separators=(",", ":")).encode()
