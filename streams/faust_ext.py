"""The one place Sentio extends Faust beyond its public API, for exactly-once batching.

Faust is the agents' API (agents over streams, tables with changelogs). Batching exactly once
needs what Faust does not offer publicly; each is here, and only here, and
``tests/unit/test_faust_ext.py`` fails if a faust-streaming upgrade changes what they rely on
(the dependency is pinned to the minor version those tests pass on):

1. :class:`SentioStream` (the app's ``Stream`` class): calls the stream's ``on_acked`` hook
   after each ack, so a batch knows when its last event was acked (``commit_gate.py``).
2. :class:`SentioTable` (the app's ``Table`` class): hands every changelog record's future to
   the table's ``changes`` tracker, so a commit can wait until the broker has them
   (``table_changes.py``). It also remembers the partition of every key it wrote, so that a
   revoke can drop the keys of the partitions gone (:meth:`SentioTable.forget_partitions`):
   Faust's in-memory store keeps a write whose transaction then aborted (a revoke's commit
   can abort), and the next recovery, which reads the changelog from its start into the same
   dict, only overwrites the keys the changelog holds.
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
6. :class:`SentioTransport` (set as the app's ``transport``) with :class:`SentioConsumer`:
   Faust's consumer hands each fetched message to the streams inside ``wait_first`` (four
   tasks and an ``asyncio.wait`` per message, so that a rebalance or a stop can interrupt a
   hand-over blocked on a full stream buffer). :class:`SentioConsumer` waits instead on one
   long-lived watcher of those interruptions and one task per message; once the watcher has
   fired (flow suspended) it falls back to Faust's own call. Its fetch loop is Faust's
   ``_drain_messages`` otherwise unchanged, and a test pins the source it was copied from.
7. Table recovery under exactly once. Faust takes a changelog partition's highwater from the
   consumer's cached last stable offset, which is None until that partition was fetched: a
   worker that starts alone (a restart after the killed member left the group) saw every
   changelog as empty and started with empty tables. :class:`SentioConsumerThread` asks the
   broker instead (``end_offsets``: the last stable offset under read_committed). Such a
   changelog ends with a transaction marker, which no event carries, so Faust ends recovery
   only after two 5 s waits for events (``detect_aborted_tx``); :class:`SentioRecovery` ends
   it as soon as every record below the highwater was handed to the tables (the consumer's
   position past it, no fetched batch still being delivered, the changelog queue empty).
8. The fetch wait. aiokafka keeps one fetch in flight per broker, and a fetch names only the
   partitions with nothing buffered; Faust fixes its ``fetch_max_wait_ms`` at 1,500 ms. After
   the event loop was busy for a while (a batch, a commit), every readings partition has
   records buffered, the next fetch names only quiet partitions (ticks, alerts, changelogs)
   and the broker holds it, and every reading behind it, for up to 1.5 s (seen in 1.5 s gaps
   between deliveries). :class:`SentioTransport` takes ``fetch_max_wait_ms`` and
   ``fetch_min_bytes``, which :class:`SentioConsumerThread` sets on the aiokafka consumer it
   creates (read by its ``start``, which builds the fetcher; a test pins that).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast

import faust
from faust.streams import _current_event
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service

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
    _written: dict[int, set[Any]] | None = None  # partition -> keys written by this worker

    def send_changelog(self, partition: int | None, key: Any, *args: Any, **kwargs: Any) -> Any:
        sent = super().send_changelog(partition, key, *args, **kwargs)
        if self.changes is not None:
            self.changes.add(sent)
        if partition is not None:
            if self._written is None:
                self._written = {}
            self._written.setdefault(partition, set()).add(key)
        return sent

    def forget_partitions(self, partitions: set[int]) -> int:
        """Drop from the in-memory store (not from the changelog: no tombstones) every key
        of ``partitions`` this worker wrote or recovered; the next recovery reads them back
        as committed. How many keys were dropped."""
        store = self.data
        data: dict[Any, Any] = getattr(store, "data", {})
        recovered: dict[Any, int] = getattr(store, "_key_partition", {})
        gone = {key for key, partition in recovered.items() if partition in partitions}
        written = self._written or {}
        for partition in partitions:
            gone |= written.pop(partition, set())
        for key in gone:
            data.pop(key, None)
            recovered.pop(key, None)
        return len(gone)


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


RECOVERY_END_POLL_S = 0.2


class SentioRecovery(Recovery):
    """Faust's recovery, seeking the stream partitions before it resumes them, and ending as
    soon as the transactional changelogs were read to their highwater (item 7 above)."""

    _reading = False  # between the seek to the changelogs' starts and the recovery's end

    @Service.task
    async def _end_at_transaction_markers(self) -> None:
        while not self.should_stop:
            await self.sleep(RECOVERY_END_POLL_S)
            consumer = self.app.consumer
            if not isinstance(consumer, SentioConsumer):
                return  # Faust's own consumer: Faust's own (slower) end of recovery
            if self.in_recovery and self.app.in_transaction:
                await self._mark_read_to_highwater()
            else:
                consumer.watch_delivery = set()
                consumer.delivered_to.clear()

    async def _mark_read_to_highwater(self) -> None:
        if not (self._reading and self.in_recovery):
            return  # highwaters and start offsets not known yet: nothing to judge
        consumer = cast(SentioConsumer, self.app.consumer)
        offsets = self.active_offsets
        pending = {
            tp: highwater
            for tp, highwater in self.active_highwaters.items()
            if highwater is not None and highwater >= 0 and (offsets.get(tp) or -1) < highwater
        }
        consumer.watch_delivery = set(pending)
        delivered = consumer.delivered_to
        # delivered_to: the position after a fetch whose records were all handed over. The
        # highwater is the last offset below the last stable offset: under exactly once a
        # transaction marker, which no fetch returns. A position at it means every record of
        # the partition is in the changelog queue or applied (Faust's own test, after 10 s).
        if not self.tables.changelog_queue.empty():
            return
        for tp, highwater in pending.items():
            if delivered.get(tp, -1) >= highwater:
                offsets[tp] = highwater
        if self.in_recovery and not self.need_recovery():
            consumer.watch_delivery = set()
            delivered.clear()
            self.flush_buffers()
            self._set_recovery_ended()
            self.signal_recovery_end.set()

    async def _seek_offsets(self, consumer: Any, tps: Any, offsets: Any, title: str) -> None:
        await super()._seek_offsets(consumer, tps, offsets, title)
        if isinstance(consumer, SentioConsumer):
            consumer.delivered_to.clear()  # positions from before the seek say nothing now
        # Faust seeks the active changelogs once their highwaters and start offsets are
        # known, then reads them if need_recovery(): only from here may the reading end.
        self._reading = title == "active" and self.need_recovery()

    async def _build_highwaters(
        self, consumer: Any, tps: Any, destination: Any, title: str
    ) -> None:
        if title == "active":  # a new round: its highwaters are not known yet
            self._reading = False
        await super()._build_highwaters(consumer, tps, destination, title)

    def _set_recovery_ended(self) -> None:
        self._reading = False
        super()._set_recovery_ended()

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


class SentioConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, asking the broker for highwaters (item 7 above), with
    the transport's fetch wait (item 8)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if isinstance(transport, SentioTransport):
            consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
            consumer._fetch_min_bytes = transport.fetch_min_bytes
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Any:
        # Faust: the cached last stable offset when in a transaction, None before a fetch.
        # end_offsets under read_committed (exactly once) is the last stable offset.
        return await self._ensure_consumer().end_offsets(partitions)


class SentioConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, handing messages to the streams without ``wait_first``."""

    _interrupted: asyncio.Future[Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch_delivery: set[TP] = set()
        """Partitions whose position :class:`SentioRecovery` follows (while it recovers)."""
        self.delivered_to: dict[TP, int] = {}
        """Their position read after a fetch's records were all handed over, before the next
        fetch: every record before it was delivered."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return SentioConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _deliver(self, callback: Callable[[Any], Awaitable[Any]], message: Any) -> None:
        """``callback(message)``, unless the flow is suspended or the consumer stops or
        crashes first (then the hand-over is cancelled, as Faust's ``wait_first`` does)."""
        watcher = self._interrupted
        if watcher is None:
            watcher = self._interrupted = asyncio.ensure_future(
                self.wait_first(self.suspend_flow.wait())
            )
        if watcher.done():  # suspended, stopping or crashed: exactly Faust's call
            self._interrupted = None
            await self.wait_first(callback(message), self.suspend_flow.wait())
            return
        delivery = asyncio.ensure_future(callback(message))
        try:
            await asyncio.wait((delivery, watcher), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            delivery.cancel()
            raise
        if delivery.done():
            delivery.result()  # an error in the hand-over propagates, as in wait_first
        else:
            delivery.cancel()

    async def on_stop(self) -> None:
        watcher, self._interrupted = self._interrupted, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
        await super().on_stop()

    async def _note_delivered(self) -> None:
        for tp in list(self.watch_delivery):
            position = await self.position(tp)
            if position is not None:
                self.delivered_to[tp] = position

    # Faust 0.15's Consumer._drain_messages with two changes: ``_deliver`` instead of
    # ``wait_first(callback(message), self.suspend_flow.wait())``, and ``_note_delivered``
    # after a fetch's records were handed over, while recovery watches. Pinned by
    # tests/unit/test_faust_ext.py (the source of the original).
    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        deliver = self._deliver

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            await deliver(callback, message)
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)
                    if self.watch_delivery:  # Sentio: see SentioRecovery
                        await self._note_delivered()

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class SentioTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`SentioConsumer` (set as ``app.transport``) and
    the broker's longest wait on a fetch (item 8 above; Faust's own: 1,500 ms and 1 byte)."""

    Consumer = SentioConsumer

    def __init__(
        self, *args: Any, fetch_max_wait_ms: int = 1500, fetch_min_bytes: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
