"""The one place Sentio extends Faust beyond its public API, for exactly-once batching.

Faust is the agents' API (agents over streams, tables with changelogs). Batching exactly once
needs four things Faust does not offer publicly; each is here, and only here, and
``tests/unit/test_faust_ext.py`` fails if a faust-streaming upgrade changes what they rely on
(the dependency is pinned to the minor version those tests pass on):

1. :class:`SentioStream` (the app's ``Stream`` class): calls the stream's ``on_acked`` hook
   after each ack, so a batch knows when its last event was acked (``commit_gate.py``).
2. :class:`SentioTable` (the app's ``Table`` class): hands every changelog record's future to
   the table's ``changes`` tracker, so a commit can wait until the broker has them
   (``table_changes.py``).
3. :func:`in_partition_of`: makes an event the current one (``faust.streams._current_event``)
   so a table write goes to that event's partition. Faust picks a table's partition from the
   current event; a batch holds events of several partitions, and commits flush table
   changes outside any event.
4. :func:`gate_commits`: routes the consumer's ``commit`` (called by Faust's timer, its
   fetcher every ``broker_commit_every`` acks, the revoke and the stop) through a wrapper,
   so commits happen only between batches, after the live states were flushed.
   :func:`read_offset` reads the consumer's last read offset (for lag).
5. :class:`SentioTableManager` (the app's ``TableManager`` class) with
   :class:`SentioRecovery`: when table recovery ends, Faust resumes the stream partitions and
   only then seeks them to their committed offsets. Records fetched in between come from
   wherever the consumer stood: they are delivered twice (handled by ``redelivery.py``) or,
   when they lie beyond the committed offset, Faust marks the offsets before them as a gap
   and drops them when the seek brings them back: lost. Seeking while the partitions are
   still paused (as faust-streaming PR #217 does on another path) leaves Faust's own seek
   nothing to move.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import faust
from faust.streams import _current_event
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

Event = faust.EventT[Any]

RELIES_ON = "faust-streaming 0.15"


class ChangeTracker(Protocol):
    def add(self, sent: Any) -> None: ...


class SentioStream(faust.Stream[Any]):
    """A Faust stream that tells its owner when an event was acked."""

    on_acked: Callable[[], Awaitable[None]] | None = None

    async def ack(self, event: Event) -> bool:
        try:
            return bool(await super().ack(event))
        finally:
            hook = self.on_acked
            if hook is not None:
                await hook()


class SentioTable(faust.Table[Any, Any]):
    """A Faust table whose changelog records are tracked until the broker acknowledged them."""

    changes: ChangeTracker | None = None

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        sent = super().send_changelog(*args, **kwargs)
        if self.changes is not None:
            self.changes.add(sent)
        return sent


@contextmanager
def in_partition_of(event: Event) -> Iterator[None]:
    """Make ``event`` the current one, so table reads and writes inside use its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def read_offset(consumer: Any, tp: TP) -> int | None:
    """The offset of the last message the consumer read from ``tp`` (None: none yet)."""
    found = consumer._read_offset.get(tp)
    return None if found is None else int(found)


CommitWrapper = Callable[
    [Callable[..., Awaitable[bool]], tuple[Any, ...], dict[str, Any]], Awaitable[bool]
]


def gate_commits(consumer: Any, wrapper: CommitWrapper) -> None:
    """Route every ``consumer.commit(...)`` through ``wrapper(plain_commit, args, kwargs)``."""
    if getattr(consumer, "_sentio_gated", False):
        return
    plain_commit = consumer.commit

    async def commit(*args: Any, **kwargs: Any) -> bool:
        return await wrapper(plain_commit, args, kwargs)

    consumer.commit = commit
    consumer._sentio_gated = True


class SentioRecovery(Recovery):
    """Faust's recovery, seeking the stream partitions before it resumes them."""

    async def _seek_before_resume(self, generation_id: int) -> None:
        consumer = self.app.consumer
        if self.app.consumer_generation_id != generation_id or not consumer.assignment():
            return
        await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        await self._seek_before_resume(generation_id)
        await super().on_recovery_completed(generation_id)

    async def _resume_streams(self, generation_id: int = 0) -> None:
        await self._seek_before_resume(generation_id)
        await super()._resume_streams(generation_id)


class SentioTableManager(TableManager):
    """Faust's table manager with :class:`SentioRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SentioRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
