"""Read a NAB data folder: ``<category>/<file>.csv`` series and ``combined_windows.json``."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.nab.scoring import FloatArray, windows_to_rows

WINDOWS_FILE = "combined_windows.json"
# one series per category with windows, short ones first: what --quick runs
QUICK_SERIES = (
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realAdExchange/exchange-2_cpc_results.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
    "realTraffic/speed_7578.csv",
)


@dataclass(frozen=True, slots=True)
class Series:
    """One NAB file: its name relative to the data folder, rows and anomaly windows."""

    name: str
    timestamps: tuple[str, ...]
    ts_us: tuple[int, ...]
    values: FloatArray
    windows: tuple[tuple[int, int], ...]  # inclusive row ranges


def load_corpus(root: Path, only: Sequence[str] | None = None) -> list[Series]:
    """Every series listed in the windows file (or just ``only``), sorted by name."""
    labels: dict[str, list[list[str]]] = json.loads((root / WINDOWS_FILE).read_text())
    names = sorted(labels) if only is None else list(only)
    missing = [name for name in names if name not in labels]
    if missing:
        raise ValueError(f"not in {WINDOWS_FILE}: {', '.join(missing)}")
    return [load_series(root, name, labels[name]) for name in names]


def load_series(root: Path, name: str, windows: Sequence[Sequence[str]]) -> Series:
    timestamps: list[str] = []
    values: list[float] = []
    with (root / name).open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[:2] != ["timestamp", "value"]:
            raise ValueError(f"{name}: expected a 'timestamp,value' header, got {header}")
        for row in reader:
            timestamps.append(row[0])
            values.append(float(row[1]))
    return Series(
        name=name,
        timestamps=tuple(timestamps),
        ts_us=tuple(_to_us(ts) for ts in timestamps),
        values=np.asarray(values, dtype=np.float64),
        windows=windows_to_rows(timestamps, windows),
    )


def _to_us(timestamp: str) -> int:
    moment = datetime.fromisoformat(timestamp).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
