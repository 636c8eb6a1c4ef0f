"""Exponentially weighted mean and variance of one stream of numbers, O(1) per value."""

from __future__ import annotations

import math

MAX_Z = 1e6  # a change after a constant stretch has an infinite z; this is far enough


class EwMoments:
    """Mean and variance of all values so far, each weighted ``(1 - alpha)^age``.

    West's weighted incremental algorithm with forgetting: the weights are normalised, so
    the first values give their plain mean and variance (no pull towards the first value or
    towards zero variance, unlike the textbook recursion), and after many values it is the
    usual exponentially weighted estimate. ``z`` is the distance of a value from the mean
    in standard deviations, the deviation floored at ``floor`` (constant series).
    """

    __slots__ = ("alpha", "count", "m2", "mean", "weight")

    def __init__(
        self,
        alpha: float,
        count: int = 0,
        weight: float = 0.0,
        mean: float = 0.0,
        m2: float = 0.0,
    ) -> None:
        self.alpha, self.count, self.weight, self.mean, self.m2 = alpha, count, weight, mean, m2

    def add(self, value: float) -> None:
        keep = 1.0 - self.alpha
        self.weight = keep * self.weight + 1.0
        delta = value - self.mean
        self.mean += delta / self.weight
        self.m2 = keep * self.m2 + delta * (value - self.mean)
        self.count += 1

    @property
    def var(self) -> float:
        return max(self.m2, 0.0) / self.weight if self.weight > 0 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def z(self, value: float, floor: float) -> float:
        return min(abs(value - self.mean) / max(self.std, floor), MAX_Z)

    def to_list(self) -> list[float]:
        return [self.count, self.weight, self.mean, self.m2]

    @classmethod
    def from_list(cls, alpha: float, data: list[float]) -> EwMoments:
        count, weight, mean, m2 = data
        return cls(alpha, int(count), float(weight), float(mean), float(m2))


def alpha_for(half_life: float) -> float:
    """Weight of the newest value such that a value ``half_life`` values old weighs half."""
    return 1.0 - math.exp(-math.log(2.0) / half_life)


def band_score(z: float, threshold: float) -> float:
    """``z² / (z² + threshold²)``: 0 on the expected value, 0.5 on the band edge (z = threshold).

    Unlike a logistic it does not reach 1.0 in floating point before z ≈ 1e8 x threshold, so
    larger surprises always score higher: one threshold on scores is one threshold on z.
    """
    square = z * z
    return square / (square + threshold * threshold)
