"""Series for the detector tests, and feeding them in one reading at a time."""

from __future__ import annotations

import random
from typing import Any

from sentio_iot.streams.detectors.base import Detector, Score

STEP_US = 300_000_000  # five minutes, like most NAB series


def noisy(seed: int, n: int, level: float = 20.0, sigma: float = 1.0) -> list[float]:
    """``n`` readings of Gaussian noise around ``level``."""
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, sigma) for _ in range(n)]


def feed(
    detector: Detector[Any], values: list[float], start: int = 0, step_us: int = STEP_US
) -> list[Score]:
    """Each value's score, the ``i``-th at ``(start + i) * step_us``."""
    return [detector.update((start + i) * step_us, v) for i, v in enumerate(values)]
