"""A live client's outgoing queue: bounded, never blocks the producer, coalesces by key.

``put`` replaces a queued update with the same key (a slow client gets the latest value per
key, not every one) and, when ``max_keys`` distinct keys are already waiting, drops the
oldest and counts it; the sender then tells the client how many were dropped and the cursor
to resume from, so nothing is lost silently.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from sentio_iot.api.views import Update


class CoalescingQueue:
    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._items: OrderedDict[str, Update] = OrderedDict()
        self._ready = asyncio.Event()
        self.coalesced = 0  # updates replaced by a newer one of the same key
        self.dropped = 0  # updates dropped because the queue was full (since last taken)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, update: Update) -> None:
        if update.key in self._items:
            del self._items[update.key]  # the newer one goes to the back: order stays by seq
            self.coalesced += 1
        elif len(self._items) >= self.max_keys:
            self._items.popitem(last=False)
            self.dropped += 1
        self._items[update.key] = update
        self._ready.set()

    async def get(self, timeout_s: float) -> Update | None:
        """The oldest queued update, or None after ``timeout_s`` without one."""
        if not self._items:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                return None
        _, update = self._items.popitem(last=False)
        return update

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped
