"""The device-state agent: last values, last-seen and online/offline per device, exactly once.

A step of the readings agent (``readings.py``): readings update each device's
:class:`~sentio_iot.streams.device_state.DeviceState`, kept live in memory (``state.py``) and
written to the ``device_state`` table once per commit. Offline detection needs the wall
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

import logging
from collections.abc import Iterator

from faust.types import TP

from sentio_iot.records import now_us
from sentio_iot.streams import faust_ext
from sentio_iot.streams.app import Event, StreamApp
from sentio_iot.streams.device_state import DeviceState, DeviceStateTracker
from sentio_iot.streams.readings import ReadingBatch
from sentio_iot.streams.state import dump_state, load_state

log = logging.getLogger(__name__)

AGENT = "device_state"


def attach(app: StreamApp) -> None:
    """Run the device-state step in the readings agent; declare the ticks topic and timer."""
    rules = app.config.streams.device_state
    readings = app.topic_name("readings")
    ticks = app.internal_topic_name("device_state-ticks")
    app.serde("device-events")
    app.add_reading_step(DeviceStateStep(app, ticks))

    async def tick() -> None:
        """Append the wall time to the ticks of every readings partition this worker owns."""
        value = str(now_us()).encode()
        for tp in sorted(app.faust.consumer.assignment()):
            if tp.topic == readings:
                await app.faust.producer.send(ticks, None, value, tp.partition, None, None)

    app.faust.timer(rules.check_interval_s, name=f"sentio.{AGENT}.tick")(tick)


class DeviceStateStep:
    """Readings update states, ticks look for silent devices."""

    name = AGENT

    def __init__(self, app: StreamApp, ticks: str) -> None:
        rules = app.config.streams.device_state
        self.app = app
        self.ticks = ticks
        self.topics = (ticks,)
        self.max_lag = app.config.streams.batch_max
        self.tracker = DeviceStateTracker(
            rules.offline_after_s, rules.offline_factor, rules.offline_floor_s
        )
        self.states = app.live_states("device_state", load, dump)

    async def process(self, batch: ReadingBatch) -> None:
        states, tracker = self.states, self.tracker
        for event, reading in batch.items:
            if reading is None:
                if event.message.topic == self.ticks:
                    self.check_silence(batch, event)
                continue
            device_id = str(reading["device_id"])
            state = states.get(device_id, event)
            heard_us = int(event.message.timestamp * 1_000_000)
            state, change = tracker.observe(state, reading, heard_us, event.message.partition)
            states.put(device_id, state, event)
            if change is not None:
                log.info("device %s %s", change.device_id, change.kind.value)
                batch.emit(AGENT, "device-events", change.device_id, change.to_record(), event)

    def check_silence(self, batch: ReadingBatch, tick: Event) -> None:
        """On a tick of partition p: the devices of p silent past their timeout go OFFLINE."""
        partition = tick.message.partition
        if lagging(self.app, partition, self.max_lag):
            return
        now = int(tick.message.value or b"0")
        for state in self.states_of_partition(partition, tick):
            change = self.tracker.check(state, now)
            if change is not None:
                self.states.put(state.device_id, state, tick)
                log.info("device %s %s", change.device_id, change.kind.value)
                batch.emit(AGENT, "device-events", change.device_id, change.to_record(), tick)

    def states_of_partition(self, partition: int, tick: Event) -> Iterator[DeviceState]:
        """The states of partition ``partition``; the first call after an assignment also
        brings the table's states of that partition to life (devices not heard since)."""
        states = self.states
        if partition not in states.scanned:
            with faust_ext.in_partition_of(tick):
                stored = list(states.table.items())
            for key, value in stored:
                device_id = key.decode()
                if device_id in states:
                    continue
                state = load(value)
                if state.partition == partition:
                    states.adopt(device_id, state, partition)
            states.scanned.add(partition)
        for _device_id, state in states.of_partition(partition):
            yield state


def lagging(app: StreamApp, partition: int, max_lag: int) -> bool:
    consumer = app.faust.consumer
    tp = TP(app.topic_name("readings"), partition)
    highwater = consumer.highwater(tp)
    read = faust_ext.read_offset(consumer, tp)
    if highwater is None or read is None:
        return False
    return bool(highwater - (read + 1) > max_lag)


def load(raw: bytes) -> DeviceState:
    return DeviceState.from_state(load_state(raw))


def dump(state: DeviceState) -> bytes:
    return dump_state(state.to_state())
