"""A live client's outgoing queue of encoded frames: bounded, never blocks the producer.

The hub encodes each batch of updates once per group of clients with the same filter and
batch size (:class:`Frame`) and puts the same frame into every member's :class:`Outbox`:
no update is serialised per client. While there is room every frame is queued, in order.
A frame that would take the queue past ``max_updates`` (the client is slower than the data)
empties it instead and marks the client *behind*: what it missed is then sent from the views
as the latest value per key since the last update it was sent (coalesced), so memory stays
bounded, nobody waits for the slow client, and nothing is lost silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sentio_iot.api.views import Update


@dataclass(frozen=True, eq=False)
class Frame:
    """One text frame for the wire and the updates it carries (oldest first)."""

    text: str
    updates: tuple[Update, ...]

    @property
    def count(self) -> int:
        return len(self.updates)

    @property
    def last_seq(self) -> int:
        return self.updates[-1].seq


def encode(updates: Sequence[Update], batch: int) -> list[Frame]:
    """Frames of at most ``batch`` updates: one update alone is its own message, more are
    joined from their cached texts into ``{"type": "updates", "items": [...]}``."""
    frames = []
    for start in range(0, len(updates), batch):
        chunk = tuple(updates[start : start + batch])
        if len(chunk) == 1:
            text = chunk[0].message
        else:
            text = '{"type":"updates","items":[' + ",".join(u.message for u in chunk) + "]}"
        frames.append(Frame(text, chunk))
    return frames


class Outbox:
    def __init__(self, max_updates: int) -> None:
        self.max_updates = max_updates
        self.frames: deque[Frame] = deque()
        self.queued = 0  # updates in the queued frames
        self.behind = False  # overflowed: the sender resends from the views
        self.coalesced = 0  # updates dropped from the queue (sent as the latest per key)
        self.overflows = 0
        self._unreported = 0  # dropped since the sender last told the client
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self.queued

    def push(self, frame: Frame) -> None:
        if self.behind:
            self.coalesced += frame.count
            self._unreported += frame.count
            return
        if self.queued + frame.count > self.max_updates:
            dropped = self.queued + frame.count
            self.coalesced += dropped
            self._unreported += dropped
            self.overflows += 1
            self.frames.clear()
            self.queued = 0
            self.behind = True
        else:
            self.frames.append(frame)
            self.queued += frame.count
        self._ready.set()

    def replace(self, frames: Sequence[Frame]) -> None:
        """Swap the queued frames (after a subscription change: refiltered ones)."""
        self.frames = deque(frames)
        self.queued = sum(f.count for f in frames)

    async def get(self, timeout_s: float) -> Frame | None:
        """The oldest queued frame; None when behind or after ``timeout_s`` with nothing."""
        if not self.frames and not self.behind:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait()
            except TimeoutError:
                return None
        if not self.frames:
            return None
        frame = self.frames.popleft()
        self.queued -= frame.count
        return frame

    def take_behind(self) -> int | None:
        """Updates dropped since the last call if the client fell behind (and is now caught
        up by the caller), else None."""
        if not self.behind:
            return None
        dropped, self._unreported, self.behind = self._unreported, 0, False
        return dropped
