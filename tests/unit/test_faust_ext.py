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
