"""Turn a detector's raw surprise into a tail probability, per series, from its own past.

Raw surprises (a z-score, a forecast error) are not comparable across series: a noisy
series is always surprised. ``RankCalibrator`` keeps the last ``size`` raw values and answers
how rare the new one is among them: ``tail = (values >= raw + 1) / (n + 1)``. A new record
(above every kept value) is refined by how far above: ``tail`` is multiplied by
``max / raw``, so a reading twice the record is rarer than one just above it. ``1 - tail``
is then comparable across series, which is what one threshold for all series needs.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque


class RankCalibrator:
    """The rank of a raw value among the last ``size`` raw values, O(size) memory."""

    __slots__ = ("_recent", "_size", "_sorted")

    def __init__(self, size: int, recent: list[float] | None = None) -> None:
        self._size = size
        self._recent: deque[float] = deque(recent or ())
        self._sorted = sorted(self._recent)

    def __len__(self) -> int:
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
