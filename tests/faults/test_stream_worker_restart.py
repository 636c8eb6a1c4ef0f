"""A stream worker SIGKILLed after it committed, restarted once its group is empty: the tables
come back from their changelogs and the rollup windows open at the kill count every reading
exactly once.

The case that broke: with the group empty the restarted worker joins alone, and Faust (under
exactly once) took each changelog's highwater from the consumer's cached last stable offset,
unknown before a fetch, so it recovered nothing and went on with empty tables: every window
open at the kill lost the readings before it (``streams/faust_ext.py``, item 7). The kill
tests in test_stream_worker_kill.py restart while the killed member is still in the group.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the stream_worker helpers

import pytest
from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401

from sentio_iot.records import Metric, Reading

S = 1_000_000
T0 = 1_700_000_040 * S  # a minute boundary
DEVICES = 20
SECONDS = 600  # ten 60 s windows per device; the reading at 600 s closes the tenth
SNAPSHOT_AT = 200  # readings before this second are in the first commit's snapshot
KILLED_AT = 330  # readings before this second are processed and committed before the kill
SESSION_TIMEOUT_S = 6


def readings(seconds: range) -> list[tuple[str, dict[str, object]]]:
    out = []
    for second in seconds:
        for d in range(DEVICES):
            device = f"press-{d:02d}"
            value = float(d * 1000 + second)
            reading = Reading(device, T0 + second * S, [Metric("force", value, "kN")], "replay")
            out.append((device, reading.to_record()))
    return out


@pytest.mark.timeout(180)
def test_a_worker_restarted_alone_recovers_its_tables_and_counts_open_windows_once(
    stream_testbed: StreamTestbed,
) -> None:
    bed = stream_testbed.configure(
        streams={
            "rollups": {"windows_s": [60], "grace_s": 0},
            "commit_interval_s": 1,
            "session_timeout_s": SESSION_TIMEOUT_S,
            "heartbeat_interval_s": 1,
            # only a partition's first commit is a snapshot: the restart must find that
            # snapshot's marker in the recovered table and replay the readings since
            "snapshot_every_commits": 1000,
        }
    )
    bed.produce("readings", [])  # topic and schema before the worker
    worker = bed.start_worker(agents="rollups")
    port = worker.web_port
    for part in (range(SNAPSHOT_AT), range(SNAPSHOT_AT, KILLED_AT)):  # processed, committed
        bed.produce("readings", readings(part))
        deadline = time.monotonic() + 60
        while worker.metric('sentio_stream_events_total{agent="rollups"}') < part.stop * DEVICES:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        time.sleep(3)  # commits every second: everything read is committed
    emitted = worker.metric('sentio_stream_emitted_total{agent="rollups",topic="rollups"}')
    assert emitted == DEVICES * 5  # windows 0-4 closed; window 5 (300-359 s) is open
    worker.kill()
    time.sleep(SESSION_TIMEOUT_S + 3)  # the killed member has left the group
    bed.produce("readings", readings(range(KILLED_AT, SECONDS + 1)))

    again = bed.start_worker(agents="rollups", web_port=port)  # joins an empty group
    rollups = bed.read("rollups", count=DEVICES * 10, timeout_s=90, settle_s=3)
    windows = Counter((r.key, r.value["window_start"]) for r in rollups)
    assert {w: n for w, n in windows.items() if n > 1} == {}
    assert len(windows) == DEVICES * 10
    for r in rollups:
        d = int(r.value["device_id"].split("-")[1])
        w = (r.value["window_start"] - T0) // (60 * S)
        first = d * 1000 + w * 60
        assert (r.value["count"], r.value["min"], r.value["max"]) == (60, first, first + 59), r
        assert r.value["sum"] == sum(range(first, first + 60))
    log = again.log_path.read_text(errors="replace")
    replayed = sum(int(n) for n in re.findall(r"replayed (\d+) reading", log))
    # at least the readings committed after the snapshot (its marker was recovered)
    assert replayed >= (KILLED_AT - SNAPSHOT_AT) * DEVICES, log[-3000:]
    assert again.stop() == 0
