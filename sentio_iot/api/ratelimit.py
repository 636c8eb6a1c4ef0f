"""Login rate limit: a token bucket per user name and one per client address.

Both buckets must have a token for an attempt to go ahead, so one address cannot try many
names and many addresses cannot try one name fast. The buckets live in memory (an API
restart resets them) and are bounded: the least recently used are forgotten.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from sentio_iot.api.errors import RateLimited
from sentio_iot.settings.api import LoginLimit

MAX_BUCKETS = 100_000


class LoginRateLimiter:
    def __init__(self, settings: LoginLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(settings.attempts)
        self.refill_s = settings.per_s
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def attempt(self, user: str, address: str) -> None:
        """Take one token from both buckets, or raise RateLimited with the wait."""
        now = self.clock()
        keys = (f"user:{user}", f"addr:{address}")
        levels = [self._level(key, now) for key in keys]
        if min(levels) < 1.0:
            wait = (1.0 - min(levels)) * self.refill_s
            raise RateLimited(f"too many login attempts; try again in {wait:.0f} s", wait)
        for key, level in zip(keys, levels, strict=True):
            self._buckets[key] = (level - 1.0, now)
            self._buckets.move_to_end(key)
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)

    def _level(self, key: str, now: float) -> float:
        level, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, level + (now - at) / self.refill_s)
