"""SIGKILL a stream worker mid-stream, start it again: rollups neither missing nor doubled;
and, on the real clock, kill it several times at random points while windows are open: every
window's count and sum, the anomalies and the device events exactly as one run would give.

The worker runs with processing_guarantee exactly_once: the table changelog, the rollups and
the source offsets of a partition commit in one Kafka transaction. A kill aborts the open
transactions; the restarted worker recovers the table from what was committed and reprocesses
from the committed offsets. Read with isolation.level=read_committed, every window of every
device must appear exactly once with exactly its count and sum.
"""

from __future__ import annotations

import random
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the stream_worker helpers

import pytest
from confluent_kafka import Producer
from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401

from sentio_iot.records import Metric, Reading
from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.streams.anomaly import AnomalyScorer

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
    assert again.stop() == 0  # SIGTERM: drains, commits, exits 0


# -- on the real clock, killed several times at random points ---------------------------------

LIVE_DEVICES = 20
LIVE_SECONDS = 100
WINDOW_S = 10
SILENT = "press-19"  # goes quiet from 25 s to 85 s: OFFLINE, then ONLINE
ANOMALY = {"detector": "robust_zscore", "params": {"warmup": 10}, "threshold": 0.9}


def live_value(device: int, second: int) -> float:
    """Noise around the device's level, with a spike every 23 s (a different second per device)."""
    if second > 15 and (second + device) % 23 == 0:
        return 500.0 + device
    return 100.0 + device + (second * 7 + device) % 5 * 0.1


class LiveProducer(threading.Thread):
    """1 reading/s per device, stamped with the wall clock, for LIVE_SECONDS."""

    def __init__(self, bed: StreamTestbed) -> None:
        super().__init__(daemon=True)
        self.bed = bed
        self.sent: list[tuple[str, int, float]] = []  # device, ts, value

    def run(self) -> None:
        serde = self.bed.serde("readings")
        serde.register()
        producer = Producer(  # idempotent, as sentio's publisher: a retry never repeats a reading
            {
                "bootstrap.servers": self.bed.config.kafka.bootstrap_servers,
                "linger.ms": 5,
                "enable.idempotence": True,
            }
        )
        start = time.time()
        for second in range(LIVE_SECONDS):
            time.sleep(max(0.0, start + second - time.time()))
            ts = int(start + second) * S
            for d in range(LIVE_DEVICES):
                device = f"press-{d:02d}"
                if device == SILENT and 25 <= second < 85:
                    continue
                value = live_value(d, second)
                record = Reading(device, ts, [Metric("force", value, "kN")], "simulate")
                producer.produce(
                    self.bed.topic("readings"),
                    key=device.encode(),
                    value=serde.encode(record.to_record()),
                )
                self.sent.append((device, ts, value))
            producer.poll(0)
        assert producer.flush(30) == 0


def expected_rollups(
    sent: list[tuple[str, int, float]],
) -> dict[tuple[str, int], tuple[int, float]]:
    """(device, window start) -> (count, sum) of every window a later reading closed."""
    last = {device: ts for device, ts, _ in sent}
    windows: dict[tuple[str, int], tuple[int, float]] = {}
    for device, ts, value in sent:
        start = ts - ts % (WINDOW_S * S)
        if start + WINDOW_S * S <= last[device]:
            count, total = windows.get((device, start), (0, 0.0))
            windows[(device, start)] = (count + 1, total + value)
    return windows


def expected_anomalies(sent: list[tuple[str, int, float]]) -> set[tuple[str, int]]:
    """What one uninterrupted run of the same detector finds (device, ts)."""
    scorer = AnomalyScorer(AnomalySettings.model_validate(ANOMALY))
    series: dict[str, Any] = {}
    found = set()
    for device, ts, value in sent:
        one = series.setdefault(device, scorer.new_series())
        if scorer.observe(one, device, "force", ts, value, {}) is not None:
            found.add((device, ts))
    return found


@pytest.mark.timeout(300)
def test_sigkills_at_random_points_on_the_real_clock_count_every_reading_once(
    stream_testbed: StreamTestbed,
) -> None:
    seed = int(time.time())
    rng = random.Random(seed)
    bed = stream_testbed.configure(
        streams={
            "rollups": {"windows_s": [WINDOW_S], "grace_s": 0},
            "anomaly": ANOMALY,
            # longer than a restart takes (~20 s: the killed member's session times out)
            "device_state": {"offline_after_s": 40, "check_interval_s": 1},
        }
    )
    agents = "rollups,device_state,anomaly"
    bed.produce("readings", [])  # topic and schema before the worker
    worker = bed.start_worker(agents=agents)
    port = worker.web_port
    live = LiveProducer(bed)
    live.start()
    started = time.monotonic()
    kills = [rng.uniform(12, 30), rng.uniform(40, 58), rng.uniform(70, 88)]
    for at in kills:
        time.sleep(max(0.0, started + at - time.monotonic()))
        worker.kill()
        time.sleep(rng.uniform(0, 4))
        worker = bed.start_worker(agents=agents, web_port=port)
    live.join(LIVE_SECONDS + 30)
    why = f"seed {seed}, kills at {[round(k, 1) for k in kills]} s"

    sent = Counter(
        (r.value["device_id"], r.value["ts"])
        for r in bed.read("readings", count=len(live.sent), timeout_s=30, settle_s=1)
    )
    assert len(sent) == len(live.sent) and max(sent.values()) == 1, "the input itself repeats"
    want = expected_rollups(live.sent)
    rollups = bed.read("rollups", count=len(want), timeout_s=90, settle_s=3)
    got = Counter((r.value["device_id"], r.value["window_start"]) for r in rollups)
    assert {w: n for w, n in got.items() if n > 1} == {}, why
    assert set(got) == set(want), why
    wrong = {
        (r.value["device_id"], r.value["window_start"]): (r.value["count"], r.value["sum"])
        for r in rollups
        if (r.value["count"], r.value["sum"])
        != want[(r.value["device_id"], r.value["window_start"])]
    }
    assert wrong == {}, f"{why}: (count, sum) found {wrong}"

    anomalies = bed.read("anomalies", count=1, timeout_s=30, settle_s=2)
    found = Counter((a.value["device_id"], a.value["ts"]) for a in anomalies)
    assert {a: n for a, n in found.items() if n > 1} == {}, why
    assert set(found) == expected_anomalies(live.sent), why

    events = bed.read("device-events", count=0, timeout_s=10, settle_s=3)
    kinds = [(e.value["device_id"], e.value["kind"]) for e in events]
    assert len(set((e.value["device_id"], e.value["kind"], e.value["ts"]) for e in events)) == len(
        events
    ), why
    assert kinds in ([], [(SILENT, "OFFLINE"), (SILENT, "ONLINE")]), f"{why}: {kinds}"
    assert worker.stop() == 0
    # Rollup and anomaly states are written every few commits (streams/snapshots.py): the
    # restarted workers rebuilt them by replaying the readings since, and still got all of
    # the above exactly right.
    replays = re.findall(r"replayed (\d+) reading", worker.log_path.read_text(errors="replace"))
    assert sum(int(n) for n in replays) > 0, f"{why}: no restart replayed readings"
