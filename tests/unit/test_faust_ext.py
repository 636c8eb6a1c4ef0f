"""What ``streams/faust_ext.py`` relies on in faust-streaming, checked against the installed one.

faust-streaming is pinned to the minor version these pass on; an upgrade that changes any of
them fails here first, before a worker double-counts or hangs.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from importlib.metadata import version
from typing import Any

import faust
import faust.streams
import pytest
from faust.tables import base as table_base
from faust.transport import consumer as consumer_module
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service

from sentio_iot.streams import faust_ext


def test_the_pinned_minor_version_is_installed() -> None:
    assert version("faust-streaming").startswith("0.15.")
    assert faust_ext.RELIES_ON == "faust-streaming 0.15"


def test_the_current_event_is_a_context_variable_of_weak_references() -> None:
    # in_partition_of sets it; Faust's tables read it through faust.current_event()
    var = faust.streams._current_event
    assert type(var).__name__ == "ContextVar"
    source = inspect.getsource(faust.streams.current_event)
    assert "_current_event.get" in source and "()" in source


def test_tables_send_their_changelog_through_send_changelog() -> None:
    # SentioTable overrides it; every table write (on_key_set) goes through it
    from faust.tables.table import Table

    assert "self.send_changelog(" in inspect.getsource(Table.on_key_set)
    parameters = list(inspect.signature(table_base.Collection.send_changelog).parameters)
    assert parameters[:4] == ["self", "partition", "key", "value"]
    assert "current_event()" in inspect.getsource(table_base.Collection.partition_for_key)


def test_take_events_acks_every_event_through_the_stream() -> None:
    # SentioStream.ack is how a batch learns that its last event was acked
    source = inspect.getsource(faust.Stream.take_events)
    assert "self.ack(" in source or "await self.ack" in source
    assert "async def ack" in inspect.getsource(faust.Stream)


def test_the_consumer_keeps_read_offsets_and_commits_through_commit() -> None:
    source = inspect.getsource(consumer_module.Consumer)
    assert "self._read_offset" in source
    assert "self.commit" in inspect.getsource(consumer_module.Consumer.wait_empty)
    assert "await self.commit(" in inspect.getsource(
        consumer_module.Consumer.commit_and_end_transactions
    )


def test_recovery_resumes_partitions_before_it_seeks_them() -> None:
    # the reason for streams/redelivery.py: if Faust ever seeks first, the guard is harmless
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery)
    assert "perform_seek()" in source and "resume_partitions(" in source


def test_the_app_takes_stream_and_table_classes_from_its_settings() -> None:
    app = faust.App(
        "faust-ext-check",
        Stream=faust_ext.SentioStream,
        Table=faust_ext.SentioTable,
        autodiscover=False,
    )
    assert app.conf.Stream is faust_ext.SentioStream
    assert app.conf.Table is faust_ext.SentioTable


def test_recovery_has_the_two_resume_paths_sentio_recovery_seeks_before() -> None:
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery

    for name in ("on_recovery_completed", "_resume_streams", "_wait"):
        assert inspect.iscoroutinefunction(getattr(Recovery, name)), name
    assert "self._recovery = Recovery(" in inspect.getsource(TableManager)
    app = faust.App(
        "faust-ext-recovery", TableManager=faust_ext.SentioTableManager, autodiscover=False
    )
    assert isinstance(app.tables.recovery, faust_ext.SentioRecovery)


# SentioConsumer._drain_messages is a copy of this with one call changed (faust_ext.py, 6.).
DRAIN_MESSAGES_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def test_the_fetch_loop_sentio_consumer_copies_is_unchanged() -> None:
    source = inspect.getsource(consumer_module.Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == DRAIN_MESSAGES_SHA256
    assert (
        "await self.wait_first(\n" in source
        and "callback(message), self.suspend_flow.wait()" in source
    )
    ours = inspect.getsource(faust_ext.SentioConsumer._drain_messages)
    assert "wait_first" not in ours and "await deliver(callback, message)" in ours
    assert faust_ext.SentioTransport.Consumer is faust_ext.SentioConsumer


class Probe(Service):
    """What SentioConsumer._deliver uses of a consumer: a mode Service with suspend_flow."""

    _deliver = faust_ext.SentioConsumer._deliver
    _interrupted: asyncio.Future[Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


async def test_deliver_hands_over_and_a_suspended_flow_cancels_a_blocked_hand_over() -> None:
    probe = Probe()
    got: list[int] = []
    blocked = asyncio.Event()

    async def put(message: int) -> None:
        if message == 2:
            blocked.set()
            await asyncio.Event().wait()  # a full stream buffer
        got.append(message)

    await probe._deliver(put, 1)
    assert got == [1]
    watcher = probe._interrupted
    assert watcher is not None and not watcher.done()  # one watcher for every message
    await probe._deliver(put, 3)
    assert probe._interrupted is watcher

    async def suspend() -> None:
        await blocked.wait()
        probe.suspend_flow.set()

    task = asyncio.ensure_future(suspend())
    await asyncio.wait_for(probe._deliver(put, 2), 5)  # returns: the hand-over was cancelled
    await task
    assert got == [1, 3]

    async def fails(message: int) -> None:
        raise ValueError(message)

    probe.suspend_flow.clear()
    with pytest.raises(ValueError):
        await probe._deliver(fails, 4)  # after a suspension: Faust's own wait_first
    with pytest.raises(ValueError):
        await probe._deliver(fails, 5)  # and with a new watcher again
    watcher = probe._interrupted
    assert watcher is not None
    watcher.cancel()


def test_faust_takes_highwaters_from_the_cached_last_stable_offset_under_exactly_once() -> None:
    # What SentioConsumerThread replaces (faust_ext.py, 7.): None before the first fetch,
    # which Faust's recovery reads as "empty changelog".
    from faust.tables.recovery import Recovery

    source = inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread._highwaters)
    assert "last_stable_offset(tp)" in source and "in_transaction" in source
    assert "value - 1 if value is not None else -1" in inspect.getsource(Recovery._build_highwaters)
    assert "AIOKafkaConsumerThread(" in inspect.getsource(
        faust_aiokafka.Consumer._new_consumer_thread
    )
    assert "end_offsets(partitions)" in inspect.getsource(
        faust_ext.SentioConsumerThread._highwaters
    )


def test_faust_ends_a_transactional_recovery_only_after_two_idle_waits() -> None:
    # What SentioRecovery shortens, and the Recovery members it uses.
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery._slurp_changelogs.fun)
    assert "timeout=5.0" in source and "timeout_count > 1" in source
    assert "offsets[tp] = highwater" in source and "self.flush_buffers()" in source
    assert "self._set_recovery_ended()" in source and "self.signal_recovery_end.set()" in source
    # a round: _build_highwaters("active"), _seek_offsets("active"), then reading
    restart = inspect.getsource(Recovery._restart_recovery.fun)
    assert (
        restart.index('active_highwaters, "active"')
        < restart.index('active_offsets, "active"\n')
        < restart.index("Restoring state from changelog topics")
    )
    for name in ("need_recovery", "flush_buffers", "_set_recovery_ended", "_seek_offsets"):
        assert callable(getattr(Recovery, name)), name
    assert "await consumer.seek_wait(" in inspect.getsource(Recovery._seek_offsets)
    ours = inspect.getsource(faust_ext.SentioConsumer._drain_messages)
    assert ours.index("unset_flag(flag_consumer_fetching)\n") < ours.index("_note_delivered()")


async def test_recovery_ends_once_every_record_below_the_highwater_was_delivered() -> None:
    app = faust.App(
        "faust-ext-recovery-end",
        processing_guarantee="exactly_once",
        store="memory://",
        TableManager=faust_ext.SentioTableManager,
        autodiscover=False,
    )
    app.transport = faust_ext.SentioTransport(app.conf.broker_consumer, app)
    recovery = app.tables.recovery
    assert isinstance(recovery, faust_ext.SentioRecovery)
    consumer = app.consumer
    assert isinstance(consumer, faust_ext.SentioConsumer)
    assert isinstance(consumer._thread, faust_ext.SentioConsumerThread)
    try:
        await recovery_end_checks(recovery, consumer)
    finally:
        consumer._thread.thread_loop.close()  # made with the thread, never started here


async def recovery_end_checks(
    recovery: faust_ext.SentioRecovery, consumer: faust_ext.SentioConsumer
) -> None:
    done, marker_only = TP("app-t-changelog", 0), TP("app-t-changelog", 1)
    recovery.active_highwaters.update({done: 4, marker_only: 9})  # last stable offset - 1
    recovery.active_offsets.update({done: 4, marker_only: 7})  # last record applied: 7
    recovery._set_recovery_started()
    await recovery._mark_read_to_highwater()  # before the seek to the changelogs' starts:
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()  # not judged
    recovery._reading = True  # what SentioRecovery._seek_offsets sets for the actives

    consumer.delivered_to[marker_only] = 8  # the record at 8 not handed over yet
    await recovery._mark_read_to_highwater()
    assert consumer.watch_delivery == {marker_only}  # what the fetch loop now follows
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()

    consumer.delivered_to[marker_only] = 9  # everything before the marker (9) handed over
    recovery.tables.changelog_queue.put_nowait(object())  # ... but one not yet applied
    await recovery._mark_read_to_highwater()
    assert recovery.in_recovery and recovery.active_offsets[marker_only] == 7
    recovery.tables.changelog_queue.get_nowait()

    await recovery._mark_read_to_highwater()
    assert recovery.active_offsets[marker_only] == 9
    assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()
    assert consumer.watch_delivery == set() and consumer.delivered_to == {}
    assert not recovery._reading


def test_a_revoke_drops_the_keys_of_its_partitions_from_the_in_memory_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write whose transaction aborted stays in Faust's in-memory store, and recovery only
    overwrites the keys the changelog holds: SentioTable.forget_partitions drops the revoked
    partitions' keys, written here or recovered, without sending tombstones."""
    from faust.stores.memory import Store

    app = faust.App(
        "faust-ext-forget", Table=faust_ext.SentioTable, store="memory://", autodiscover=False
    )
    table = app.Table("t", key_type=bytes, value_type=bytes)
    sent: list[tuple[int | None, bytes]] = []

    def send(self: Any, partition: int | None, key: bytes, *args: Any, **kwargs: Any) -> None:
        sent.append((partition, key))

    monkeypatch.setattr(table_base.Collection, "send_changelog", send)

    store = table.data
    assert isinstance(store, Store) and isinstance(store._key_partition, dict)
    for partition, key in [(0, b"a"), (1, b"b"), (2, b"c")]:
        store.data[key] = b"written"  # what Table.__setitem__ does, then on_key_set:
        table.send_changelog(partition, key, b"written")
    store.data[b"r"] = b"recovered"  # as Store.apply_changelog_batch records it
    store._key_partition[b"r"] = 1
    assert sent == [(0, b"a"), (1, b"b"), (2, b"c")]

    assert table.forget_partitions({1, 2}) == 3
    assert dict(store.data) == {b"a": b"written"}
    assert sent == [(0, b"a"), (1, b"b"), (2, b"c")]  # no tombstones
