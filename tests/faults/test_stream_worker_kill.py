"""SIGKILL a stream worker mid-stream, start it again: rollups neither missing nor doubled.

The worker runs with processing_guarantee exactly_once: the table changelog, the rollups and
the source offsets of a partition commit in one Kafka transaction. A kill aborts the open
transactions; the restarted worker recovers the table from what was committed and reprocesses
from the committed offsets. Read with isolation.level=read_committed, every window of every
device must appear exactly once with exactly its count and sum.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the stream_worker helpers

from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401

from sentio_iot.records import Metric, Reading

S = 1_000_000
T0 = 1_700_000_040 * S  # a minute boundary
DEVICES = 20
SECONDS = 600  # ten 60 s windows per device; the reading at 600 s closes the tenth


def readings() -> list[tuple[str, dict[str, object]]]:
    out = []
    for second in range(SECONDS + 1):
        for d in range(DEVICES):
            device = f"press-{d:02d}"
            value = float(d * 1000 + second)
            reading = Reading(device, T0 + second * S, [Metric("force", value, "kN")], "replay")
            out.append((device, reading.to_record()))
    return out


def test_sigkill_mid_stream_loses_and_repeats_no_rollup(stream_testbed: StreamTestbed) -> None:
    bed = stream_testbed.configure(
        streams={
            "rollups": {"windows_s": [60], "grace_s": 0},
            "batch_max": 300,
            "commit_interval_s": 5,
        }
    )
    bed.produce("readings", readings())
    worker = bed.start_worker(agents="rollups")
    port = worker.web_port
    deadline = time.monotonic() + 60
    while worker.metric('sentio_stream_events_total{agent="rollups"}') < 4000:
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.05)
    emitted_before_kill = worker.metric(
        'sentio_stream_emitted_total{agent="rollups",topic="rollups"}'
    )
    worker.kill()
    assert 0 < emitted_before_kill < DEVICES * 10  # killed in the middle, after some output

    again = bed.start_worker(agents="rollups", web_port=port)  # same state dir
    rollups = bed.read("rollups", count=DEVICES * 10, timeout_s=90, settle_s=3)

    windows = Counter((r.key, r.value["window_start"]) for r in rollups)
    doubled = {w: n for w, n in windows.items() if n > 1}
    assert doubled == {}
    expected = {
        (f"press-{d:02d}".encode(), T0 + w * 60 * S) for d in range(DEVICES) for w in range(10)
    }
    assert set(windows) == expected, f"missing: {sorted(expected - set(windows))[:5]}"
    for r in rollups:
        d = int(r.value["device_id"].split("-")[1])
        w = (r.value["window_start"] - T0) // (60 * S)
        first = d * 1000 + w * 60
        assert (r.value["count"], r.value["min"], r.value["max"]) == (60, first, first + 59)
        assert r.value["sum"] == sum(range(first, first + 60))
    assert "last stop was not clean: rebuilding tables from changelogs" in again.log(10**6)
    assert again.stop() == 0  # SIGTERM: drains, commits, marks the local tables clean
    assert (bed.tmp_path / "state" / bed.name / f"worker-{port}" / "clean-stop").exists()
