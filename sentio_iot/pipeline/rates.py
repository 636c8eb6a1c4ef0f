"""Per-second rates from counters sampled now and then (workers restart: counters reset)."""

from __future__ import annotations

from collections import deque

WINDOW_S = 5.0


class RateMeter:
    """``add(key, total, now)`` then ``rate(key)``: the counter's increase per second over the
    last few seconds. A counter that goes down (its worker restarted) starts over."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._points: dict[str, deque[tuple[float, float]]] = {}

    def add(self, key: str, total: float, now: float) -> None:
        points = self._points.setdefault(key, deque())
        if points and total < points[-1][1]:
            points.clear()
        points.append((now, total))
        while len(points) > 2 and now - points[1][0] >= self.window_s:
            points.popleft()

    def rate(self, key: str) -> float | None:
        points = self._points.get(key)
        if not points or len(points) < 2:
            return None
        (t0, v0), (t1, v1) = points[0], points[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else None
