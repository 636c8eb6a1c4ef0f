"""Simulated plant configuration: fleet size and mix, rate, seed, anomalies and degradation.

Two clocks: readings leave at ``rate`` per wall-clock second, and plant time (the readings'
timestamps) advances ``time_acceleration`` times faster, so a day of seasonality can pass in
minutes. Plant time moves in fixed steps from ``start_time``; with ``start_time`` set, the
same seed gives byte-identical readings however fast or slow the publisher is.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DeviceKind(StrEnum):
    PUMP = "pump"
    MOTOR = "motor"
    PRESS = "press"
    ENVIRONMENT = "environment"


class AnomalyKind(StrEnum):
    SPIKE = "spike"
    LEVEL_SHIFT = "level_shift"
    DRIFT = "drift"
    STUCK = "stuck"


class SimulateConfig(BaseModel):
    """One simulated fleet: N virtual devices with seasonality, noise, anomalies and degradation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    devices: int = Field(10, ge=1, le=1_000_000, description="Number of virtual devices.")
    rate: float = Field(
        1.0,
        gt=0,
        le=10_000_000,
        description="Readings per wall-clock second, per device or for the whole fleet (see rate_per).",
    )
    rate_per: Literal["device", "fleet"] = Field(
        "device", description="Whether rate counts per device or for the whole fleet."
    )
    seed: int = Field(0, description="Seed: the same seed and start_time give identical readings.")
    kinds: dict[DeviceKind, float] = Field(
        default_factory=lambda: {kind.value: 1.0 for kind in DeviceKind},
        validate_default=True,
        description="Fleet mix: a weight per device kind (pump, motor, press, environment).",
    )
    anomaly_rate: float = Field(
        0.5, ge=0, description="Expected injected anomalies per device per hour of plant time."
    )
    anomaly_kinds: dict[AnomalyKind, float] = Field(
        default_factory=lambda: {kind.value: 1.0 for kind in AnomalyKind},
        validate_default=True,
        description="A weight per anomaly kind (spike, level_shift, drift, stuck).",
    )
    anomaly_min_s: float = Field(
        120.0, gt=0, description="Shortest level shift, drift or stuck window (plant seconds)."
    )
    anomaly_max_s: float = Field(
        1800.0, gt=0, description="Longest level shift, drift or stuck window (plant seconds)."
    )
    degrading_fraction: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of the machines (pumps, motors, presses) that degrade toward failure.",
    )
    failure_min_h: float = Field(
        6.0, gt=0, description="Shortest life of a degrading machine, new to failure (plant hours)."
    )
    failure_max_h: float = Field(
        48.0, gt=0, description="Longest life of a degrading machine, new to failure (plant hours)."
    )
    start_time: datetime | None = Field(
        None, description="Plant time of the first reading (UTC if no zone); none: now at start."
    )
    time_acceleration: float = Field(
        1.0, gt=0, le=1_000_000, description="Plant seconds that pass per wall-clock second."
    )
    device_prefix: str = Field(
        "sim",
        min_length=1,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Device ids are <prefix>-<kind>-<number>, e.g. sim-pump-003.",
    )
    ground_truth_path: Path | None = Field(
        None,
        description="File for the injected anomalies and failures: .csv, else JSON lines.",
    )
    duration_s: float | None = Field(
        None, gt=0, description="Stop after this much plant time; none: run until stopped."
    )
    count: int | None = Field(
        None, ge=1, description="Stop after this many readings per device; none: no limit."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every reading."
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> Self:
        if self.anomaly_min_s > self.anomaly_max_s:
            raise ValueError("anomaly_min_s must not exceed anomaly_max_s")
        if self.failure_min_h > self.failure_max_h:
            raise ValueError("failure_min_h must not exceed failure_max_h")
        for name, weights in (("kinds", self.kinds), ("anomaly_kinds", self.anomaly_kinds)):
            if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
                raise ValueError(f"{name} needs weights >= 0 and at least one above 0")
        return self

    @property
    def device_rate(self) -> float:
        """Readings per wall-clock second of each device."""
        return self.rate / self.devices if self.rate_per == "fleet" else self.rate

    @property
    def tick_interval_s(self) -> float:
        """Wall-clock seconds between two readings of one device (one tick of the fleet)."""
        return 1.0 / self.device_rate

    @property
    def step_us(self) -> int:
        """Plant microseconds between two readings of one device."""
        return max(1, round(self.time_acceleration * self.tick_interval_s * 1_000_000))

    @property
    def max_ticks(self) -> int | None:
        """Readings per device before the simulation stops (count or duration), if any."""
        limits = [self.count] if self.count is not None else []
        if self.duration_s is not None:
            limits.append(max(1, math.ceil(self.duration_s * 1_000_000 / self.step_us)))
        return min(limits) if limits else None

    def start_us(self, now_us: int) -> int:
        """Plant time of the first reading in microseconds: start_time, else ``now_us``."""
        if self.start_time is None:
            return now_us
        start = self.start_time
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        return (start - EPOCH) // timedelta(microseconds=1)
