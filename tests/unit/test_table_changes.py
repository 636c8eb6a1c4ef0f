"""TableChanges: a batch's events are acked only after its table changes were acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sentio_iot.streams.table_changes import TableChanges


class ChangelogTable:
    """A table whose changelog sends return futures the test resolves (the broker's acks)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, asyncio.Future[str]]] = []
        self.changes: TableChanges | None = None  # as SentioTable reports its records

    def send_changelog(self, key: Any, value: Any) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.sent.append((key, future))
        if self.changes is not None:
            self.changes.add(future)
        return future


async def test_waits_until_every_change_of_the_batch_is_acknowledged() -> None:
    table = ChangelogTable()
    changes = TableChanges()
    table.changes = changes
    table.send_changelog(b"press-01", b"{}")
    table.send_changelog(b"press-02", b"{}")
    waiting = asyncio.create_task(changes.acknowledged())
    await asyncio.sleep(0.01)
    table.sent[0][1].set_result("offset 7")
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the last record is still on its way: no ack may happen yet
    table.sent[1][1].set_result("offset 8")
    await asyncio.wait_for(waiting, 1)
    assert changes.pending == 0


async def test_a_change_the_broker_refused_fails_the_batch() -> None:
    table = ChangelogTable()
    changes = TableChanges()
    table.changes = changes
    table.send_changelog(b"press-01", b"{}")
    table.sent[0][1].set_exception(RuntimeError("produce failed"))
    with pytest.raises(RuntimeError, match="produce failed"):
        await changes.acknowledged()


async def test_changes_sent_by_another_agent_meanwhile_stay_tracked() -> None:
    rollups, alerts = ChangelogTable(), ChangelogTable()
    changes = TableChanges()
    rollups.changes = changes
    alerts.changes = changes
    rollups.send_changelog(b"press-01", b"{}")
    waiting = asyncio.create_task(changes.acknowledged())
    await asyncio.sleep(0)
    alerts.send_changelog(b"press-09", b"{}")  # another agent's batch, not acknowledged yet
    rollups.sent[0][1].set_result("offset 3")
    await asyncio.wait_for(waiting, 1)
    assert changes.pending == 1  # still awaited by the other agent's batch
    alerts.sent[0][1].set_result("offset 4")
    await changes.acknowledged()
    assert changes.pending == 0
