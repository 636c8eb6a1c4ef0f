"""A live client's outgoing queue: bounded, never blocks the producer, coalesces when full.

While there is room every update is queued, in order. Once ``max_items`` wait (the client
is slower than the data), a new update replaces the queued one with the same key (the
client gets the latest value per key, not every value) and an update with a new key drops
the oldest queued one, counted in ``dropped``; the sender then tells the client how many
were dropped and the cursor to resume from, so nothing is lost silently.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from sentio_iot.api.views import Update

Entry = tuple[str, int]  # key, seq


class CoalescingQueue:
    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[Entry, Update] = OrderedDict()
        self._newest: dict[str, Entry] = {}  # the newest queued entry of each key
        self._ready = asyncio.Event()
        self.coalesced = 0  # updates replaced by a newer one of the same key
        self.dropped = 0  # updates dropped because the queue was full (since last taken)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, update: Update) -> None:
        if len(self._items) >= self.max_items:
            older = self._newest.get(update.key)
            if older is not None:
                del self._items[older]
                self.coalesced += 1
            else:
                self._forget(*self._items.popitem(last=False))
                self.dropped += 1
        entry = (update.key, update.seq)
        self._items[entry] = update
        self._newest[update.key] = entry
        self._ready.set()

    def _forget(self, entry: Entry, _update: Update) -> None:
        if self._newest.get(entry[0]) == entry:
            del self._newest[entry[0]]

    async def get(self, timeout_s: float) -> Update | None:
        """The oldest queued update, or None after ``timeout_s`` without one."""
        if not self._items:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                return None
        entry, update = self._items.popitem(last=False)
        self._forget(entry, update)
        return update

    def take_now(self, most: int) -> list[Update]:
        """Up to ``most`` more queued updates, oldest first, without waiting."""
        taken: list[Update] = []
        while self._items and len(taken) < most:
            entry, update = self._items.popitem(last=False)
            self._forget(entry, update)
            taken.append(update)
        return taken

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped
