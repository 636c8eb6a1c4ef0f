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

Commits run one at a time, each to its end. Faust commits from several tasks (the timer, the
fetcher every ``broker_commit_every`` acks, the consumer's stop); a commit is a sequence per
partition (offsets into the transaction, commit it, begin the next one), and a caller cancelled
in the middle (the fetcher is cancelled first at shutdown) would leave a partition between two
transactions: the stop's final commit then fails with "Not in the middle of a transaction" and
the worker hangs. So the commit runs in its own task, shielded from its caller's cancellation,
and the next commit waits for it rather than being folded into it.
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
        self._committing = False  # a commit is waiting for open batches, or running
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
        """``run()`` once no batch is open and no other commit runs; ``skipped`` when poisoned
        or waiting timed out. Cancelling the caller does not cancel a commit that started."""
        if self._poisoned:
            return skipped
        async with self._changed:
            if not await self._wait(lambda: not self._committing, "the commit before it ran"):
                return skipped
            self._committing = True
            try:
                opened = await self._wait(lambda: self._open == 0, "a batch stayed open")
            except BaseException:  # cancelled while waiting: let batches go on
                self._release()
                raise
            if not opened or self._poisoned:
                self._release()
                return skipped
            task = asyncio.ensure_future(self._run(run))
        return await asyncio.shield(task)

    def _release(self) -> None:
        """End this commit's hold on new batches and commits (the condition's lock is held)."""
        self._committing = False
        self._changed.notify_all()

    async def _wait(self, predicate: Callable[[], bool], what: str) -> bool:
        """Wait (holding the condition) until ``predicate()``; False after ``wait_s``."""
        try:
            async with asyncio.timeout(self.wait_s):  # not wait_for: it can swallow a cancel
                await self._changed.wait_for(predicate)
            return True
        except TimeoutError:
            log.warning("commit skipped: %s for %.0f s", what, self.wait_s)
            return False

    async def _run(self, run: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await run()
            self._dirty = False
            return result
        finally:
            async with self._changed:
                self._release()
