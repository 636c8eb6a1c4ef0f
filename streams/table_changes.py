"""Wait for a batch's table changes to be acknowledged before its events are acked.

A Faust table write only queues its changelog record in the producer buffer; a background
task hands it to the transactional producer. Flushing that buffer returns once the queue is
empty, which can be before the last record reached the producer. If the batch's events are
acked and the transaction commits in that gap, the offsets commit without the state change,
and a crash before the next commit loses it: the restarted worker rebuilds the table without
those readings and never reads them again.

:class:`TableChanges` keeps the future of every changelog record sent by the tables that
report to it (``faust_ext.SentioTable``); :meth:`TableChanges.acknowledged` waits until the broker acknowledged all of them
(so they are inside the open transaction). Agents sharing a worker share one tracker: a batch
waits for every change sent so far, its own included.
"""

from __future__ import annotations

import asyncio
from typing import Any


class TableChanges:
    """The changelog records of some tables that the broker has not acknowledged yet."""

    def __init__(self) -> None:
        self._pending: list[asyncio.Future[Any]] = []

    def add(self, sent: Any) -> None:
        """Keep the future of a changelog record (``SentioTable.send_changelog`` calls this)."""
        self._pending.append(sent)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def acknowledged(self) -> None:
        """Return once every record sent so far was acknowledged; raise if one failed."""
        if not self._pending:
            return
        await asyncio.gather(*list(self._pending))
        self._pending[:] = [sent for sent in self._pending if not sent.done()]
