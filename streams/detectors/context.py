"""Context novelty: has this series ever shown the pattern of its last few readings?

After warm-up the value axis is cut into bins of a fixed width (the warm-up range divided
by ``bins``; bins beyond the warm-up range are simply new bins). A reading's context is the
bins of the last ``length`` readings; ``ContextMemory`` counts how often each context was
seen and answers ``1 / (1 + count)``: 1 for a pattern never seen before, small for a
familiar one. Periodic series learn their cycle and flag a missing peak or a flat stretch
that no z-score sees. The memory keeps at most ``capacity`` contexts: when full, it forgets
those seen once (novel patterns that never came back).
"""

from __future__ import annotations

import math
from collections import deque


class ContextMemory:
    """Counts of the contexts (tuples of value bins) a series has shown."""

    __slots__ = ("_bins", "_capacity", "_counts", "_length", "_recent", "origin", "width")

    def __init__(self, length: int, bins: int, capacity: int) -> None:
        self._length, self._bins, self._capacity = length, bins, capacity
        self._recent: deque[int] = deque(maxlen=length)
        self._counts: dict[str, int] = {}
        self.origin: float | None = None
        self.width = 1.0

    def start(self, values: list[float]) -> None:
        """Fix the grid from the warm-up readings."""
        low, high = min(values), max(values)
        span = high - low
        self.origin = low
        self.width = span / self._bins if span > 0 else max(abs(low) * 0.01, 1e-9)

    def novelty(self, value: float) -> float:
        """Learn the context ending with ``value``; 1/(1 + times it was seen before)."""
        if self.origin is None:
            raise RuntimeError("ContextMemory.start() first")
        self._recent.append(math.floor((value - self.origin) / self.width))
        if len(self._recent) < self._length:
            return 0.0
        key = ",".join(map(str, self._recent))
        seen = self._counts.get(key, 0)
        self._counts[key] = seen + 1
        if len(self._counts) > self._capacity:
            self._counts = {k: n for k, n in self._counts.items() if n > 1}
        return 1.0 / (1.0 + seen)

    def to_dict(self) -> dict[str, object]:
        return {
            "recent": list(self._recent),
            "counts": dict(self._counts),
            "origin": self.origin,
            "width": self.width,
        }

    def restore(self, state: dict[str, object]) -> None:
        self._recent = deque((int(b) for b in state["recent"]), maxlen=self._length)  # type: ignore[attr-defined]
        self._counts = {str(k): int(n) for k, n in state["counts"].items()}  # type: ignore[attr-defined]
        origin = state["origin"]
        self.origin = None if origin is None else float(origin)  # type: ignore[arg-type]
        self.width = float(state["width"])  # type: ignore[arg-type]
