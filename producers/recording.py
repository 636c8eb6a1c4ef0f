"""An :class:`~sentio_iot.producers.connector.Emitter` that keeps what a connector emits in memory.

For tests, notebooks and programs that embed a connector without Kafka::

    emitted = RecordingEmitter()
    connector = ModbusConnector(config, emitted, ConnectorContext())
    await connector.connect()
    task = asyncio.create_task(connector.run())
    await emitted.wait_for_readings(3)
    print(emitted.readings)

Everything is kept, in the order it was emitted, until the lists are cleared by the caller.
The Kafka key of a dead letter is not kept: it only chooses a partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from sentio_iot.records import DeviceEvent, EventKind, Reading


class DeadLetter(NamedTuple):
    """An input the connector could not turn into a reading, and why."""

    raw: bytes
    reason: str
    origin: str


@dataclass
class RecordingEmitter:
    """Keeps readings, device events and dead letters in lists, in the order they came."""

    readings: list[Reading] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def event(self, event: DeviceEvent) -> None:
        self.events.append(event)

    def dead_letter(
        self, raw: bytes, reason: str, *, origin: str, key: bytes | None = None
    ) -> None:
        self.dead_letters.append(DeadLetter(raw, reason, origin))

    def kinds(self, device_id: str | None = None) -> list[EventKind]:
        """The kinds of the events so far, of one device or (``None``) of all."""
        return [e.kind for e in self.events if device_id is None or e.device_id == device_id]

    async def wait_for_readings(self, count: int, timeout_s: float = 5.0) -> None:
        """Return once at least ``count`` readings were emitted; TimeoutError after ``timeout_s``."""
        await wait_until(lambda: len(self.readings) >= count, timeout_s)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``condition`` every 10 ms until it holds; TimeoutError after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)
