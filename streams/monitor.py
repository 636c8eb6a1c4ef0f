"""A Faust monitor that skips per-message bookkeeping: we export our own counters.

Faust's default Monitor records timings and counts for every message and stream event
(``on_message_in`` ... ``on_message_out``) for statistics nobody reads here; on the hot path
that is several Python calls per reading. Everything else (commits, rebalances, web) is kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from faust.sensors import Monitor
from faust.types import TP


class QuietMonitor(Monitor):
    """Faust's Monitor without the per-message and per-event hooks."""

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def batch_in(self, tps: Iterable[TP]) -> None:
        """What ``on_stream_event_in`` recorded, once per batch: when each partition's stream
        last took an event. Faust's consumer reads it to tell a stalled stream from a busy one
        (without it every partition is logged as "has not started processing" every check)."""
        now = time.monotonic()
        for tp in tps:
            self.stream_inbound_time[tp] = now

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None
