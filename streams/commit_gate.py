"""Commit only between batches: what makes Faust's exactly-once hold for batched agents.

Faust commits a partition's transaction from a timer, whatever the agents are doing, with the
offsets of the events acked so far. An agent in the middle of a batch has already sent part of
its output (and table changes) into that transaction, but its events are acked only after the
batch. A commit in between would publish output whose input is then read again after a crash:
duplicates, or state counted twice.

The gate makes commits wait until no batch is open (a readers-writer lock: batches are readers,
the commit is the writer), and holds new batches back while a commit runs. A batch is open from
:meth:`CommitGate.open_batch` until the last of its events is acked. A batch interrupted before
its acks (cancelled, crashed) poisons the gate: no commit happens any more in this process, the
open transactions abort, and the next worker resumes from the last consistent commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class CommitGate:
    """Counts open batches; :meth:`commit` runs a commit only when there are none."""

    def __init__(self, wait_s: float = 30.0) -> None:
        self.wait_s = wait_s
        self._open = 0
        self._committing = False
        self._poisoned = False
        self._dirty = False  # a batch wrote since the last commit
        self._changed = asyncio.Condition()

    @property
    def poisoned(self) -> bool:
        return self._poisoned

    @property
    def consistent(self) -> bool:
        """True when everything written locally was committed (a clean point to stop at)."""
        return not self._poisoned and not self._dirty and self._open == 0

    async def open_batch(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._committing)
            self._open += 1
            self._dirty = True

    async def close_batch(self) -> None:
        async with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def poison(self, why: str) -> None:
        if not self._poisoned:
            log.warning("no more commits in this worker: %s (the next one resumes)", why)
        self._poisoned = True

    async def commit(self, run: Callable[[], Awaitable[T]], skipped: T) -> T:
        """``run()`` once no batch is open; ``skipped`` when poisoned or waiting timed out."""
        if self._poisoned:
            return skipped
        async with self._changed:
            self._committing = True
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._open == 0), self.wait_s)
            except TimeoutError:
                self._committing = False
                self._changed.notify_all()
                log.warning("commit skipped: a batch stayed open for %.0f s", self.wait_s)
                return skipped
        try:
            if self._poisoned:
                return skipped
            result = await run()
            self._dirty = False
            return result
        finally:
            async with self._changed:
                self._committing = False
                self._changed.notify_all()
