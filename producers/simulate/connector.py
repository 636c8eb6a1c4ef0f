"""The simulated plant as a connector: ticks of the fleet, paced to the configured rate.

Each tick samples every device once (one reading each, ``seq`` = the tick). Ticks are due at
``tick * tick_interval_s`` after the start; when the publisher falls behind, due ticks go out
back to back, and a lag beyond :data:`MAX_LAG_S` is forgiven (the schedule restarts from now)
rather than caught up in one burst. Plant time does not depend on pacing, only on the tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from sentio_iot.producers.connector import Connector, ConnectorContext, Emitter
from sentio_iot.producers.simulate.anomalies import GroundTruthWriter
from sentio_iot.producers.simulate.config import SimulateConfig
from sentio_iot.producers.simulate.plant import SOURCE, Plant, PlantTick
from sentio_iot.records import DeviceEvent, EventKind, now_us

log = logging.getLogger(__name__)

MAX_LAG_S = 1.0
YIELD_EVERY = 1000  # readings between two chances for other tasks when no sleep comes


@dataclass
class Pacer:
    """When each tick is due on the wall clock (monotonic seconds); pure and testable."""

    interval_s: float
    anchor_s: float  # when tick ``anchor_tick`` is due
    anchor_tick: int = 0
    max_lag_s: float = MAX_LAG_S
    forgiven: int = 0  # how many times a lag was forgiven

    def delay(self, tick: int, now_s: float) -> float:
        """Seconds to wait before ``tick`` goes out (0: now). Forgives a lag over ``max_lag_s``."""
        due = self.anchor_s + (tick - self.anchor_tick) * self.interval_s
        if now_s - due > self.max_lag_s:
            self.anchor_s, self.anchor_tick = now_s, tick
            self.forgiven += 1
            return 0.0
        return max(0.0, due - now_s)


class SimulatedPlantConnector(Connector):
    """A fleet of virtual devices: seasonality, noise, injected anomalies and degradation."""

    protocol = "simulate"
    config: SimulateConfig

    def __init__(self, config: SimulateConfig, emit: Emitter, context: ConnectorContext) -> None:
        super().__init__(config, emit, context)
        self.plant: Plant | None = None
        self._truth: GroundTruthWriter | None = None

    async def connect(self) -> None:
        config = self.config
        if self.plant is None:
            self.plant = Plant(config, config.start_us(now_us()), self.context.base_labels())
        if config.ground_truth_path is not None and self._truth is None:
            # after a restart the plant goes on, and so does its ground truth
            append = self.plant.tick > 0
            self._truth = GroundTruthWriter(config.ground_truth_path, append=append)
        log.info(
            "simulated plant: %d devices, %.6g readings/s each, plant step %d us, seed %d",
            config.devices,
            config.device_rate,
            config.step_us,
            config.seed,
        )

    async def run(self) -> None:
        """Emit ticks until cancelled, or until ``count``/``duration_s`` is reached."""
        if self.plant is None:
            await self.connect()
        plant = self.plant
        assert plant is not None
        if plant.tick == 0:
            await self._announce(plant)
        max_ticks = self.config.max_ticks
        pacer = Pacer(self.config.tick_interval_s, time.monotonic(), plant.tick)
        unyielded = 0
        while max_ticks is None or plant.tick < max_ticks:
            forgiven = pacer.forgiven
            wait = pacer.delay(plant.tick, time.monotonic())
            if pacer.forgiven != forgiven:
                _log_lag(pacer.forgiven, self.config.device_rate * self.config.devices)
            if wait > 0:
                await asyncio.sleep(wait)
                unyielded = 0
            for part in plant.step_in_parts(YIELD_EVERY):
                if unyielded >= YIELD_EVERY:
                    await asyncio.sleep(0)
                    unyielded = 0
                self._emit(part)
                unyielded += len(part.readings)
        log.info("simulated plant done: %d readings per device", plant.tick)

    def _emit(self, part: PlantTick) -> None:
        for reading in part.readings:
            self.emit.reading(reading)
        for event in part.events:
            self.emit.event(event)
        if self._truth is not None:
            self._truth.write(part.truth)

    async def _announce(self, plant: Plant) -> None:
        for number, device in enumerate(plant.devices, start=1):
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            self.emit.event(
                DeviceEvent(
                    device.device_id,
                    plant.start_us,
                    EventKind.ONLINE,
                    f"simulated {device.kind.value} online",
                    SOURCE,
                    details={"kind": device.kind.value},
                    labels=device.labels,
                )
            )

    async def close(self) -> None:
        if self._truth is not None:
            self._truth.close()
            self._truth = None


def _log_lag(times: int, rate: float) -> None:
    """Log the first lag, then at 10, 100, ... times: a slow publisher must not flood the log."""
    if times == 1 or math.log10(times).is_integer():
        log.warning(
            "simulated plant is more than %.1f s behind %.6g readings/s (%d times so far); "
            "continuing from now: lower the rate or the devices",
            MAX_LAG_S,
            rate,
            times,
        )
