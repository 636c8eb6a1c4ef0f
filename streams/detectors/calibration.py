"""Turn a detector's raw surprise into a tail probability, per series, from its own past.

Raw surprises (a z-score, a forecast error, a novelty) are not comparable across series: a
noisy series is always surprised, and one detector's scores sit in a narrow band whose place
moves from series to series. One alert threshold for every series needs scores that mean the
same everywhere: the probability, under the series' own recent behaviour, of a raw value at
least this large. Three estimates, all causal (a value is judged before it is learnt):

* ``TailCalibrator``: peaks over a level. The level is the EW mean plus one EW standard
  deviation of the raw values; the share of values above it (``rate``) and their mean excess
  over it (``scale``) are EW means too; above the level the tail is exponential,
  ``tail(v) = rate * exp(-(v - level) / scale)`` (the tail of a squared z-score is
  exponential). Seven numbers per series.
* ``LikelihoodCalibrator``: Numenta's anomaly likelihood (HTM), with EW moments instead of a
  window of 8640 scores: the short EW mean ``m`` of the raw values (``window`` readings)
  against the EW mean and deviation of ``m``, ``tail = Q((m - mean) / std)`` (Gaussian upper
  tail). Five numbers per series.
* ``RankCalibrator``: the rank of the raw value among the last ``size`` ones (exact, but
  ``size`` numbers per series: a reference, too big for the stream's changelog).

``tail_score`` puts a tail probability on [0, 1]: ``-log10(tail) / digits``, so a threshold
``t`` means "rarer than one in ``10^(digits * t)`` readings of this series" on every series.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

from sentio_iot.streams.detectors.moments import EwMoments

SMALLEST_TAIL = 1e-300  # keeps log10 finite for a value far beyond anything seen
SQRT2 = math.sqrt(2.0)


def tail_score(tail: float, digits: float) -> float:
    """``-log10(tail) / digits`` clipped to [0, 1]: 0 for a common value, 1 at ``10^-digits``."""
    return min(1.0, max(0.0, -math.log10(max(tail, SMALLEST_TAIL)) / digits))


class TailCalibrator:
    """An exponential tail above ``mean + std`` of the series' raw values, all EW, O(1)."""

    __slots__ = ("alpha", "excess_weight", "floor", "moments", "rate", "scale")

    def __init__(
        self,
        alpha: float,
        moments: EwMoments | None = None,
        rate: float = 0.0,
        scale: float = 0.0,
        excess_weight: float = 0.0,
        floor: float = -math.inf,
    ) -> None:
        self.alpha, self.floor = alpha, floor
        self.moments = moments if moments is not None else EwMoments(alpha)
        self.rate, self.scale, self.excess_weight = rate, scale, excess_weight

    @property
    def count(self) -> int:
        return self.moments.count

    @property
    def level(self) -> float:
        return max(self.moments.mean + self.moments.std, self.floor)

    def tail(self, raw: float) -> float:
        """Probability of a raw value at least ``raw`` (1.0 at or below the level)."""
        excess = raw - self.level
        if excess <= 0.0 or self.scale <= 0.0:
            return 1.0
        return self.rate * math.exp(-excess / self.scale)

    def add(self, raw: float) -> None:
        moments = self.moments
        excess = raw - self.level
        above = excess > 0.0 and moments.count > 0
        keep = 1.0 - self.alpha
        # normalised EW weights (as EwMoments): the first values give their plain means
        self.rate += (float(above) - self.rate) / (keep * moments.weight + 1.0)
        if above:  # the excesses' own EW mean: its memory counts excesses, not readings
            self.excess_weight = keep * self.excess_weight + 1.0
            self.scale += (excess - self.scale) / self.excess_weight
        moments.add(raw)

    def to_list(self) -> list[float]:
        return [*self.moments.to_list(), self.rate, self.scale, self.excess_weight]

    @classmethod
    def from_list(cls, alpha: float, data: list[float]) -> TailCalibrator:
        *moments, rate, scale, weight = data
        return cls(
            alpha, EwMoments.from_list(alpha, moments), float(rate), float(scale), float(weight)
        )


class LikelihoodCalibrator:
    """HTM's anomaly likelihood: the Gaussian tail of a short mean against its long moments."""

    __slots__ = ("moments", "short", "short_alpha")

    def __init__(
        self, alpha: float, short_alpha: float, moments: EwMoments | None = None, short: float = 0.0
    ) -> None:
        self.short_alpha = short_alpha
        self.moments = moments if moments is not None else EwMoments(alpha)
        self.short = short

    @property
    def count(self) -> int:
        return self.moments.count

    def _short_with(self, raw: float) -> float:
        if self.moments.count == 0:
            return raw
        return self.short + self.short_alpha * (raw - self.short)

    def tail(self, raw: float) -> float:
        """Upper Gaussian tail of the short mean (with ``raw``) against its past moments."""
        std = self.moments.std
        if std <= 0.0:
            return 1.0
        z = (self._short_with(raw) - self.moments.mean) / std
        return 0.5 * math.erfc(z / SQRT2)

    def add(self, raw: float) -> None:
        self.short = self._short_with(raw)
        self.moments.add(self.short)

    def to_list(self) -> list[float]:
        return [*self.moments.to_list(), self.short]

    @classmethod
    def from_list(cls, alpha: float, short_alpha: float, data: list[float]) -> LikelihoodCalibrator:
        *moments, short = data
        return cls(alpha, short_alpha, EwMoments.from_list(alpha, moments), float(short))


class RankCalibrator:
    """The rank of a raw value among the last ``size`` raw values, O(size) memory.

    ``tail = (values >= raw + 1) / (n + 1)``. A new record (above every kept value) is
    refined by how far above: ``tail`` is multiplied by ``max / raw``, so a reading twice the
    record is rarer than one just above it.
    """

    __slots__ = ("_recent", "_size", "_sorted")

    def __init__(self, size: int, recent: list[float] | None = None) -> None:
        self._size = size
        self._recent: deque[float] = deque(recent or ())
        self._sorted = sorted(self._recent)

    def __len__(self) -> int:
        return len(self._recent)

    @property
    def count(self) -> int:
        return len(self._recent)

    def tail(self, raw: float) -> float:
        """Probability, from the kept values, of a raw value at least this large."""
        n = len(self._sorted)
        at_least = n - bisect_left(self._sorted, raw)
        tail = (at_least + 1) / (n + 1)
        if at_least == 0 and n and raw > 0.0 and self._sorted[-1] > 0.0:
            tail *= self._sorted[-1] / raw
        return tail

    def weigh(self, score: float, raw: float, power: float) -> float:
        """``score`` times ``(1 - tail(raw))^power``, then ``raw`` is kept (power 0: ``score``, nothing kept)."""
        if not power:
            return score
        weighted: float = score * (1.0 - self.tail(raw)) ** power
        self.add(raw)
        return weighted

    def add(self, raw: float) -> None:
        self._recent.append(raw)
        insort(self._sorted, raw)
        if len(self._recent) > self._size:
            oldest = self._recent.popleft()
            del self._sorted[bisect_left(self._sorted, oldest)]

    def to_list(self) -> list[float]:
        return list(self._recent)
