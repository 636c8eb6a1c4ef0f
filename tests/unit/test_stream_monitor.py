"""The quiet monitor still tells Faust's consumer when each partition's stream took events."""

from __future__ import annotations

import time

from faust.types import TP

from sentio_iot.streams.monitor import QuietMonitor


def test_a_batch_marks_its_partitions_as_taken_for_the_stalled_stream_check() -> None:
    monitor = QuietMonitor()
    a, b = TP("t.readings", 0), TP("t.readings", 3)
    before = time.monotonic()
    monitor.on_stream_event_in(a, 1, None, None)  # per event: nothing (the hot path)
    assert monitor.stream_inbound_time.get(a) is None
    monitor.batch_in({a, b})
    # Faust's verify_event_path logs "has not started processing" for a partition without it
    assert set(monitor.stream_inbound_time) == {a, b}
    assert before <= monitor.stream_inbound_time[a] <= time.monotonic()
