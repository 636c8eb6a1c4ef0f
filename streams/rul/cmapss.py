"""NASA's C-MAPSS turbofan files: reading them, and the usual evaluation protocol.

A file holds whitespace-separated rows ``unit cycle setting_1..3 s_1..s_21``, one per engine
cycle. Training engines run to failure; test engines stop earlier and ``RUL_FD00x.txt`` gives
the true remaining cycles after their last row. Column names follow the replay producer
(``setting_1``, ``s_2``, ...), so a replayed file feeds the stream model the same features.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

SETTINGS = ("setting_1", "setting_2", "setting_3")
SENSORS = tuple(f"s_{i}" for i in range(1, 22))
COLUMNS = (*SETTINGS, *SENSORS)
# The 14 sensors that change with degradation; the other 7 are constant in FD001.
INFORMATIVE = tuple(f"s_{i}" for i in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21))


@dataclass(frozen=True)
class Engine:
    """One engine's rows in cycle order: ``values[:, j]`` is ``COLUMNS[j]``."""

    unit: int
    cycles: NDArray[np.int64]
    values: NDArray[np.float64]

    def column(self, names: Iterable[str]) -> NDArray[np.float64]:
        return self.values[:, [COLUMNS.index(name) for name in names]]

    def __len__(self) -> int:
        return len(self.cycles)


def read_engines(path: Path) -> list[Engine]:
    """Every engine of a train_ or test_ file, ordered by unit number."""
    table = np.loadtxt(path, ndmin=2)
    if table.shape[1] != 2 + len(COLUMNS):
        raise ValueError(f"{path}: {table.shape[1]} columns, expected {2 + len(COLUMNS)}")
    engines = []
    for unit in np.unique(table[:, 0]).astype(int):
        rows = table[table[:, 0] == unit]
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        engines.append(Engine(int(unit), rows[:, 1].astype(np.int64), rows[:, 2:]))
    return engines


def read_rul(path: Path) -> NDArray[np.float64]:
    """The true RUL after the last cycle of each test engine, in unit order."""
    return np.loadtxt(path, ndmin=1).astype(np.float64)


def fingerprint(paths: Iterable[Path]) -> str:
    """sha256 over the files' bytes, in the given order: which data a model was trained on."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def rmse(predicted: NDArray[np.float64], actual: NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2)))


def nasa_score(predicted: NDArray[np.float64], actual: NDArray[np.float64]) -> float:
    """PHM08's asymmetric score: late predictions (d > 0) cost more than early ones."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))
