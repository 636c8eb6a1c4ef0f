"""A Faust monitor that skips per-message bookkeeping: we export our own counters.

Faust's default Monitor records timings and counts for every message and stream event
(``on_message_in`` ... ``on_message_out``) for statistics nobody reads here; on the hot path
that is several Python calls per reading. Everything else (commits, rebalances, web) is kept.
"""

from __future__ import annotations

from typing import Any

from faust.sensors import Monitor


class QuietMonitor(Monitor):
    """Faust's Monitor without the per-message and per-event hooks."""

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None
