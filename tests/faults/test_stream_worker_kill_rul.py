"""SIGKILL a stream worker running RUL at random points on the real clock, start it again: its
device windows, written only at snapshots and rebuilt by replaying the readings since
(streams/snapshots.py), give the predictions one run would give: none repeated, none for a
due reading another prediction already answered, each of the window its timestamp ends.
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the stream_worker helpers

import numpy as np
import pytest
from stream_worker import StreamTestbed, stream_testbed_fixture  # noqa: F401
from test_stream_worker_kill import LIVE_SECONDS, LiveProducer

from sentio_iot.streams.rul.model import TrainingOptions, build, predict
from sentio_iot.streams.rul.preprocessing import Preprocessing, pad
from sentio_iot.streams.rul.store import ModelStore

S = 1_000_000
MIN_INTERVAL_S = 5
WINDOW = 5


def due_readings(times: list[int]) -> list[int]:
    """A device's readings that make it due: its first, then the first one MIN_INTERVAL_S on."""
    due: list[int] = []
    for ts in times:
        if not due or ts - due[-1] >= MIN_INTERVAL_S * S:
            due.append(ts)
    return due


@pytest.mark.timeout(300)
def test_sigkills_leave_rul_predictions_as_one_run_gives_them(
    stream_testbed: StreamTestbed, tmp_path: Path
) -> None:
    seed = int(time.time())
    rng = random.Random(seed)
    store_dir = tmp_path / "models"
    prep = Preprocessing(("force",), WINDOW, 100.0, "hours", minimum=[[0.0]], maximum=[[600.0]])
    network = build(WINDOW, 1, 100.0, 1, TrainingOptions(filters=4, dense=4))
    ModelStore(store_dir, shipped=None).save("press", network, prep, {})
    rul = {"store_dir": str(store_dir), "models": {}, "feature_models": ["press"]}
    bed = stream_testbed.configure(
        streams={"rul": rul | {"min_interval_s": MIN_INTERVAL_S}, "snapshot_every_commits": 5}
    )
    bed.produce("readings", [])  # topic and schema before the worker
    worker = bed.start_worker(agents="rul")
    port = worker.web_port
    live = LiveProducer(bed)
    live.start()
    started = time.monotonic()
    kills = [rng.uniform(20, 40), rng.uniform(55, 75)]
    logs = []
    for at in kills:
        time.sleep(max(0.0, started + at - time.monotonic()))
        worker.kill()
        logs.append(worker.log_path.read_text(errors="replace"))
        time.sleep(rng.uniform(0, 4))
        worker = bed.start_worker(agents="rul", web_port=port)
    live.join(LIVE_SECONDS + 30)
    why = f"seed {seed}, kills at {[round(k, 1) for k in kills]} s"

    readings: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for device, ts, value in live.sent:
        readings[device].append((ts, value))
    last_due = {d: due_readings([ts for ts, _ in r])[-1] for d, r in readings.items()}
    deadline = time.monotonic() + 90
    while True:  # until the last worker answered every device's last due reading
        predictions: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for message in bed.read("rul", count=0, timeout_s=30, settle_s=3):
            record = message.value
            predictions[record["device_id"]].append((record["ts"], record["rul"]))
        caught_up = all(predictions[d][-1][0] >= t for d, t in last_due.items() if predictions[d])
        if (caught_up and len(predictions) == len(readings)) or time.monotonic() > deadline:
            break
    assert sorted(predictions) == sorted(readings), why
    served = ModelStore(store_dir).load("press")
    windows, got = [], []
    for device, found in sorted(predictions.items()):
        times = [ts for ts, _ in readings[device]]
        due = due_readings(times)
        # Each prediction answers the latest due reading at or before its window's end: a
        # second one for the same due reading would be a repeat (a window replayed wrongly).
        answered = [max(k for k, d in enumerate(due) if d <= ts) for ts, _ in found]
        assert answered == sorted(set(answered)), f"{why}: {device} {found} due {due}"
        assert found[-1][0] >= last_due[device], f"{why}: {device}'s last due reading unanswered"
        assert len(found) == len({ts for ts, _ in found}), f"{why}: {device} repeated"
        for ts, value in found:
            rows = [[v] for t, v in readings[device] if t <= ts][-WINDOW:]
            windows.append(pad(prep.scale(np.asarray(rows, dtype=np.float64)), WINDOW))
            got.append(value)
    expected = predict(served.network, np.stack(windows))
    np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=why)
    assert len(set(got)) > 1
    assert worker.stop() == 0
    logs.append(worker.log_path.read_text(errors="replace"))
    replays = [int(n) for log in logs for n in re.findall(r"replayed (\d+) reading", log)]
    assert sum(replays) > 0, f"{why}: no restart replayed readings"
