"""The simulated plant: deterministic device models stepped one tick (one reading each) at a time.

Pure: no clock, no I/O. ``Plant(config, start_us).step()`` gives the readings of every device
for the next tick, the failure events and the ground-truth rows. Every device draws from its
own random streams seeded by ``(seed, device number, purpose)``, so the readings depend on the
seed, the start time and the tick only.

A reading's value is ``level + daily cycle + noise + wear``, then the active anomaly if any:

- ``level``: the model's base times a per-device factor (0.9 to 1.1);
- daily cycle: ``amplitude * cos(2 pi (hour - peak_hour) / 24)`` in plant time (UTC);
- noise: Gaussian, bounded at about 4.3 standard deviations (a quantile table);
- wear: on degrading machines, ``rise * (age / life) ** 3``, reaching ``rise`` at failure.
  At failure the machine is replaced: a failure event, then a new life, drawn again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist

from sentio_iot.producers.simulate.anomalies import AnomalySchedule, GroundTruthRow, iso_utc
from sentio_iot.producers.simulate.config import DeviceKind, SimulateConfig
from sentio_iot.records import DeviceEvent, EventKind, Metric, Reading

SOURCE = "simulate"
DAY_US = 86_400_000_000
WEAR_EXPONENT = 3  # flat for most of a life, steep near failure, like bearing wear

NOISE_BITS = 16
NOISE = tuple(NormalDist().inv_cdf((i + 0.5) / 2**NOISE_BITS) for i in range(2**NOISE_BITS))
NOISE_BOUND = NOISE[-1]  # the largest noise, in standard deviations


@dataclass(frozen=True, slots=True)
class MetricModel:
    """How one metric of a device kind behaves when the machine is healthy, and when it wears."""

    name: str
    unit: str
    base: float
    amplitude: float  # of the daily cycle; negative: lowest at peak_hour
    noise: float  # standard deviation
    peak_hour: float = 14.0
    wear_rise: float = 0.0  # change at failure on a degrading machine


M = MetricModel
MODELS: dict[DeviceKind, tuple[MetricModel, ...]] = {
    DeviceKind.PUMP: (
        M("flow", "m3/h", 120.0, 25.0, 2.0, wear_rise=-15.0),
        M("pressure", "bar", 6.0, 0.8, 0.08, wear_rise=-0.8),
        M("vibration", "mm/s", 2.5, 0.3, 0.15, wear_rise=9.0),
        M("temperature", "degC", 55.0, 6.0, 0.5, peak_hour=15.0, wear_rise=25.0),
        M("current", "A", 32.0, 6.0, 0.6, wear_rise=6.0),
    ),
    DeviceKind.MOTOR: (
        M("speed", "rpm", 1480.0, 15.0, 2.0, wear_rise=-20.0),
        M("current", "A", 45.0, 10.0, 0.8, wear_rise=8.0),
        M("vibration", "mm/s", 1.8, 0.3, 0.12, wear_rise=8.0),
        M("temperature", "degC", 65.0, 8.0, 0.6, peak_hour=15.0, wear_rise=30.0),
        M("power", "kW", 22.0, 5.0, 0.4, wear_rise=3.0),
    ),
    DeviceKind.PRESS: (
        M("force", "kN", 800.0, 60.0, 8.0),
        M("stroke_rate", "1/min", 30.0, 6.0, 0.4),
        M("hydraulic_pressure", "bar", 210.0, 10.0, 1.5, wear_rise=-20.0),
        M("oil_temperature", "degC", 48.0, 7.0, 0.4, peak_hour=15.0, wear_rise=20.0),
        M("vibration", "mm/s", 4.0, 0.6, 0.25, wear_rise=10.0),
        M("motor_current", "A", 60.0, 12.0, 1.0, wear_rise=8.0),
    ),
    DeviceKind.ENVIRONMENT: (
        M("temperature", "degC", 22.0, 3.0, 0.2, peak_hour=15.0),
        M("humidity", "%RH", 45.0, -8.0, 0.8, peak_hour=15.0),
        M("pressure", "hPa", 1013.0, 1.5, 0.3, peak_hour=10.0),
        M("co2", "ppm", 600.0, 250.0, 15.0, peak_hour=11.0),
    ),
}
MACHINES = frozenset(kind for kind, models in MODELS.items() if any(m.wear_rise for m in models))


def daily_cycle(ts_us: int, peak_hour: float) -> float:
    """The daily seasonality at ``ts_us``: 1 at ``peak_hour`` (UTC), -1 twelve hours later."""
    hour = (ts_us % DAY_US) / 3_600_000_000
    return math.cos(2 * math.pi * (hour - peak_hour) / 24)


def wear_level(age_ticks: int, life_ticks: int) -> float:
    """How worn a degrading machine is: 0 when new, rising monotonically to 1 at failure."""
    if life_ticks <= 0:
        return 1.0
    return min(1.0, max(0.0, age_ticks / life_ticks)) ** WEAR_EXPONENT


def normal_range(model: MetricModel, level: float) -> tuple[float, float]:
    """Lowest and highest value a healthy sensor at ``level`` can report (cycle plus noise)."""
    spread = abs(model.amplitude) + NOISE_BOUND * model.noise
    return level - spread, level + spread


def fleet_kinds(config: SimulateConfig) -> list[DeviceKind]:
    """The kind of each device: the configured mix (largest remainder), shuffled by the seed."""
    total = sum(config.kinds.values())
    shares = {kind: config.devices * w / total for kind, w in config.kinds.items()}
    counts = {kind: int(share) for kind, share in shares.items()}
    by_remainder = sorted(shares, key=lambda k: (counts[k] - shares[k], list(DeviceKind).index(k)))
    for kind in by_remainder[: config.devices - sum(counts.values())]:
        counts[kind] += 1
    kinds = [kind for kind in DeviceKind for _ in range(counts.get(kind, 0))]
    random.Random(f"{config.seed}:fleet").shuffle(kinds)
    return kinds


class SimulatedDevice:
    """One virtual device: its levels, random streams, anomaly schedule and (maybe) its wear."""

    __slots__ = (
        "_life_rng",
        "_noise_bits",
        "degrading",
        "device_id",
        "failure_tick",
        "kind",
        "labels",
        "levels",
        "life_start",
        "models",
        "plant",
        "schedule",
    )

    def __init__(
        self, plant: Plant, number: int, device_id: str, kind: DeviceKind, degrading: bool
    ) -> None:
        config = plant.config
        setup = random.Random(f"{config.seed}:{number}:setup")
        self.plant = plant
        self.device_id = device_id
        self.kind = kind
        self.models = MODELS[kind]
        self.levels = [m.base * setup.uniform(0.9, 1.1) for m in self.models]
        self.labels = {**plant.labels, "kind": kind.value}
        self.degrading = degrading
        self._noise_bits = random.Random(f"{config.seed}:{number}:noise").getrandbits
        self._life_rng = random.Random(f"{config.seed}:{number}:life")
        self.life_start = 0
        self.failure_tick: int | None = None
        step_s = plant.step_us / 1_000_000
        self.schedule = AnomalySchedule(
            random.Random(f"{config.seed}:{number}:anomalies"),
            per_tick=config.anomaly_rate * step_s / 3600,
            kinds=config.anomaly_kinds,
            min_ticks=max(1, round(config.anomaly_min_s / step_s)),
            max_ticks=max(1, round(config.anomaly_max_s / step_s)),
            range_widths=[2 * (abs(m.amplitude) + NOISE_BOUND * m.noise) for m in self.models],
        )

    def normal_range(self, metric: int) -> tuple[float, float]:
        return normal_range(self.models[metric], self.levels[metric])

    def sample(self, tick: int, ts_us: int, cycle: list[float], out: PlantTick) -> Reading:
        """This device's reading at ``tick``; failures and ground truth go into ``out``."""
        bits = self._noise_bits
        values = [
            level + season + m.noise * NOISE[bits(NOISE_BITS)]
            for level, season, m in zip(self.levels, cycle, self.models, strict=True)
        ]
        if self.degrading:
            if tick == 0:
                self._new_life(0, out)
            assert self.failure_tick is not None
            worn = wear_level(tick - self.life_start, self.failure_tick - self.life_start)
            values = [v + m.wear_rise * worn for v, m in zip(values, self.models, strict=True)]
        anomaly, started = self.schedule.at(tick)
        if anomaly is not None:
            values[anomaly.metric] = anomaly.apply(values[anomaly.metric], tick)
            if started:
                out.truth.append(
                    GroundTruthRow(
                        self.device_id,
                        self.models[anomaly.metric].name,
                        anomaly.kind.value,
                        ts_us,
                        self.plant.ts_us(anomaly.end_tick),
                        magnitude=anomaly.magnitude,
                    )
                )
        metrics = [Metric(m.name, v, m.unit) for m, v in zip(self.models, values, strict=True)]
        if tick == self.failure_tick:
            self._fail(tick, ts_us, out)
        return Reading(self.device_id, ts_us, metrics, SOURCE, self.labels, tick)

    def _new_life(self, tick: int, out: PlantTick) -> None:
        config = self.plant.config
        hours = self._life_rng.uniform(config.failure_min_h, config.failure_max_h)
        life = max(1, round(hours * 3_600_000_000 / self.plant.step_us))
        self.life_start, self.failure_tick = tick, tick + life
        start_us, end_us = self.plant.ts_us(tick), self.plant.ts_us(self.failure_tick)
        for m in self.models:
            if m.wear_rise:
                out.truth.append(
                    GroundTruthRow(
                        self.device_id,
                        m.name,
                        "degradation",
                        start_us,
                        end_us,
                        magnitude=m.wear_rise,
                        rul_s=(end_us - start_us) / 1_000_000,
                    )
                )

    def _fail(self, tick: int, ts_us: int, out: PlantTick) -> None:
        out.truth.append(GroundTruthRow(self.device_id, "*", "failure", ts_us, ts_us, rul_s=0.0))
        life_s = (ts_us - self.plant.ts_us(self.life_start)) / 1_000_000
        out.events.append(
            DeviceEvent(
                self.device_id,
                ts_us,
                EventKind.ERROR,
                "machine failed (simulated); replaced by a new one",
                SOURCE,
                details={"failure_ts": iso_utc(ts_us), "life_s": f"{life_s:g}"},
                labels=self.labels,
            )
        )
        self._new_life(tick + 1, out)


@dataclass(slots=True)
class PlantTick:
    """What one step of the plant produced."""

    tick: int
    ts_us: int
    readings: list[Reading]
    events: list[DeviceEvent]
    truth: list[GroundTruthRow]


class Plant:
    """The fleet. ``step()`` advances plant time by one tick and samples every device."""

    def __init__(
        self, config: SimulateConfig, start_us: int, labels: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.start_us = start_us
        self.step_us = config.step_us
        self.labels = {**(labels or {}), **config.labels}
        self.tick = 0
        kinds = fleet_kinds(config)
        machines = [n for n, kind in enumerate(kinds) if kind in MACHINES]
        degrading_count = round(config.degrading_fraction * len(machines))
        degrading = set(random.Random(f"{config.seed}:degrading").sample(machines, degrading_count))
        width = len(str(config.devices))
        numbers: dict[DeviceKind, int] = {}
        self.devices: list[SimulatedDevice] = []
        for n, kind in enumerate(kinds):
            numbers[kind] = numbers.get(kind, 0) + 1
            device_id = f"{config.device_prefix}-{kind.value}-{numbers[kind]:0{width}d}"
            self.devices.append(SimulatedDevice(self, n, device_id, kind, n in degrading))
        self._kinds = sorted(set(kinds))

    def ts_us(self, tick: int) -> int:
        """Plant time of ``tick``."""
        return self.start_us + tick * self.step_us

    def step(self) -> PlantTick:
        """Every device's reading for the next tick."""
        return next(iter(list(self.step_in_parts(len(self.devices)))))

    def step_in_parts(self, size: int) -> Iterator[PlantTick]:
        """The next tick in parts of at most ``size`` devices, so a big fleet can be interleaved."""
        tick, ts_us = self.tick, self.ts_us(self.tick)
        cycles = {
            kind: [m.amplitude * daily_cycle(ts_us, m.peak_hour) for m in MODELS[kind]]
            for kind in self._kinds
        }
        for first in range(0, len(self.devices), size):
            out = PlantTick(tick, ts_us, [], [], [])
            out.readings = [
                d.sample(tick, ts_us, cycles[d.kind], out)
                for d in self.devices[first : first + size]
            ]
            yield out
        self.tick += 1
