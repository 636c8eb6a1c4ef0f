"""How big the simulated plant of ``sentio run`` is and how fast its clock runs.

The settings are chosen so that a fresh run shows every stage working within about two
minutes of wall time: a 1-minute event-time window closes every few seconds, injected
anomalies fire in the first minute, and degrading machines are old enough to be predicted.
The simulate connector's own defaults stay as they are (the plant RUL models are trained on
them); only the clock, the anomaly rate and the share of degrading machines change here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

SIZES = {"small": 24, "medium": 200, "large": 1000}
DEFAULT_SIZE = "medium"
DEVICE_RATE = 1.0  # readings per wall-clock second per device
# Plant seconds per wall-clock second: a 1-minute window closes every 5 s of wall time
# and still holds 12 readings of each device, so rollups have something to aggregate.
TIME_ACCELERATION = 12.0
ANOMALY_RATE = 1.0  # injected anomalies per device per plant hour (simulate default: 0.5)
DEGRADING_FRACTION = 0.3  # of pumps, motors and presses (simulate default: 0.2)
SEED = 7
# Without --duration, plant time is set to catch up with the wall clock after this long, so
# dashboards looking at "now" show the data rather than points hours in the future.
HORIZON_S = 600.0


class DeviceCount(click.ParamType):
    """``--devices``: a number, or small (24), medium (200) or large (1000)."""

    name = "devices"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in SIZES:
            return SIZES[text]
        try:
            count = int(text)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor one of {', '.join(SIZES)}", param, ctx)
        if count < 1:
            self.fail("needs at least 1 device", param, ctx)
        return count


def plant_start(
    now: datetime, duration_s: float | None, resume: datetime | None = None
) -> datetime:
    """Plant time of the first reading: behind the clock by what acceleration will gain, but
    never before where the last run's plant stopped (``resume``): the stream's windows have
    moved past that, and readings from before it would all be dropped as late."""
    wall_s = duration_s if duration_s is not None else HORIZON_S
    lead_s = wall_s * (TIME_ACCELERATION - 1)
    start = now - timedelta(seconds=lead_s)
    if resume is not None and resume > start:
        start = resume
    return start.replace(microsecond=0)


def plant_end(start: datetime, wall_s: float) -> datetime:
    """Where the plant clock stands after ``wall_s`` seconds of running."""
    return start + timedelta(seconds=wall_s * TIME_ACCELERATION)


def read_clock(path: Path) -> datetime | None:
    """The plant time the last run reached, if it left one."""
    try:
        return datetime.fromisoformat(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def write_clock(path: Path, reached: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reached.isoformat() + "\n", encoding="utf-8")


def plant_entry(
    devices: int,
    rate: float,
    ground_truth: Path,
    start: datetime,
) -> dict[str, Any]:
    """One ``producers.simulate`` entry for the main job, its clock starting at ``start``."""
    return {
        "devices": devices,
        "rate": rate,
        "seed": SEED,
        "time_acceleration": TIME_ACCELERATION,
        "anomaly_rate": ANOMALY_RATE,
        "degrading_fraction": DEGRADING_FRACTION,
        "start_time": start.isoformat(),
        "ground_truth_path": str(ground_truth),
    }
