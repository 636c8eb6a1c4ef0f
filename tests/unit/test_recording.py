"""The in-memory Emitter keeps everything in order and can be waited on."""

from __future__ import annotations

import asyncio

import pytest

from sentio_iot.producers.connector import Emitter
from sentio_iot.producers.recording import DeadLetter, RecordingEmitter, wait_until
from sentio_iot.records import DeviceEvent, EventKind, Metric, Reading


def reading(seq: int) -> Reading:
    return Reading("press-1", seq, [Metric("speed", float(seq), "rpm")], "test", {}, seq)


async def test_keeps_readings_events_and_dead_letters_in_order() -> None:
    emitted = RecordingEmitter()
    emit: Emitter = emitted
    emit.reading(reading(1))
    emit.event(DeviceEvent("press-1", 5, EventKind.ONLINE, "up", "test"))
    emit.event(DeviceEvent("press-2", 6, EventKind.OFFLINE, "down", "test"))
    emit.dead_letter(b"warm", "not a number", origin="plant/p1", key=b"p1")
    emit.reading(reading(2))
    assert [r.seq for r in emitted.readings] == [1, 2]
    assert emitted.kinds() == [EventKind.ONLINE, EventKind.OFFLINE]
    assert emitted.kinds("press-2") == [EventKind.OFFLINE]
    assert emitted.dead_letters == [DeadLetter(b"warm", "not a number", "plant/p1")]
    assert emitted.dead_letters == [(b"warm", "not a number", "plant/p1")]


async def test_waits_for_readings_and_times_out() -> None:
    emitted = RecordingEmitter()
    loop = asyncio.get_running_loop()
    for seq in (1, 2, 3):
        loop.call_soon(emitted.reading, reading(seq))
    await emitted.wait_for_readings(3, timeout_s=1.0)
    assert len(emitted.readings) == 3
    with pytest.raises(TimeoutError):
        await wait_until(lambda: len(emitted.readings) > 3, timeout_s=0)
