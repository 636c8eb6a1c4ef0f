"""What the stream's anomaly step costs per point: scoring, and the state a commit writes and a start reads.

    .venv/bin/python -m benchmarks.detector_cost [--devices 200] [--rounds 300] [--step-s 1]
    ... --versus /tmp/old   # a checkout (``git archive REV | tar -x -C /tmp/old``), same run

Drives :class:`~sentio_iot.streams.anomaly.AnomalyScorer` as the anomaly step does: devices
with five metrics each (noise, a daily cycle, spikes, a level step, a slow ramp), one reading
per device per round, in rounds, every value through ``observe``. Every ``--commit-every``
rounds it does what a commit does with every device (``dump_device`` + MessagePack, as
``streams/state.py`` writes it) and, once at the end, what a start does (``load_state`` +
``restore_device``). Readings are stamped ``--step-s`` apart: 1 s is the stream at 1 Hz (the
first day: novelty's memories learn, the weighted surprise scores), 300 s is NAB's step (the
memories score after a day).

With ``--versus DIR`` the detectors and the scorer of that checkout's ``streams/`` are loaded
beside this build's (under another package name) and both are timed in turns (CPU time of this process, the
collector tuned as the stream worker tunes it), best of ``--repeat``; before timing, the two must give the same score for every value (to 1e-12)
and restore states that continue identically. Prints microseconds per point for each part.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from types import ModuleType
from typing import Any

from sentio_iot.cli.stream_cmd import GC_THRESHOLD_YOUNG
from sentio_iot.settings.anomaly import AnomalySettings
from sentio_iot.streams import anomaly as anomaly_module
from sentio_iot.streams.state import dump_state, load_state

METRICS = ("temperature", "vibration", "pressure", "current", "flow")
OLD_PACKAGE = "_sentio_versus"


@dataclass(frozen=True, slots=True)
class Build:
    """One build's scorer module (``streams/anomaly.py`` with its detectors)."""

    label: str
    anomaly: ModuleType


def load_versus(root: Path) -> ModuleType:
    """``root/streams/anomaly.py`` and ``root/streams/detectors`` as a package of their own.

    Their imports of ``sentio_iot.streams.detectors``/``.anomaly`` are pointed at the copy, and
    the copy's registry finds the copy's detectors, so nothing of this build is mixed in.
    """
    target = Path(tempfile.mkdtemp(prefix="detector-cost-")) / OLD_PACKAGE
    (target / "detectors").mkdir(parents=True)
    (target / "__init__.py").write_text("")

    def copy(source: Path, dest: Path) -> None:
        text = source.read_text()
        text = re.sub(r"sentio_iot\.streams\.(detectors|anomaly)\b", rf"{OLD_PACKAGE}.\1", text)
        dest.write_text(text)

    for source in (root / "streams" / "detectors").glob("*.py"):
        copy(source, target / "detectors" / source.name)
    copy(root / "streams" / "anomaly.py", target / "anomaly.py")
    sys.path.insert(0, str(target.parent))
    registry = importlib.import_module(f"{OLD_PACKAGE}.detectors.registry")
    current = importlib.import_module("sentio_iot.streams.detectors.registry")
    points = {
        name: EntryPoint(
            name,
            ep.value.replace("sentio_iot.streams.detectors", f"{OLD_PACKAGE}.detectors"),
            ep.group,
        )
        for name, ep in current._entry_points().items()
    }
    registry._entry_points = lambda: points
    return importlib.import_module(f"{OLD_PACKAGE}.anomaly")


def series_values(device: int, rounds: int, step_s: float) -> dict[str, list[float]]:
    """Five deterministic series for one device (a few NaN gaps among them)."""
    rng = random.Random(device)
    day = 86_400.0 / step_s
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    for i in range(rounds):
        phase = 2 * math.pi * i / day
        values["temperature"].append(20 + 3 * math.sin(phase) + rng.gauss(0, 0.3))
        vib = abs(rng.gauss(1.0, 0.1)) + (8.0 if rng.random() < 0.004 else 0.0)
        values["vibration"].append(vib)
        values["pressure"].append(
            (5.0 if i < rounds // 2 else 6.5) + rng.gauss(0, 0.05)
            if rng.random() > 0.002
            else math.nan
        )
        values["current"].append(10 + 0.01 * i + rng.gauss(0, 0.5))
        values["flow"].append(float(round(rng.gauss(30, 4))))
    return values


def workload(devices: int, rounds: int, step_s: float) -> list[dict[str, list[float]]]:
    return [series_values(d, rounds, step_s) for d in range(devices)]


@dataclass(slots=True)
class Timing:
    score_s: float = 0.0
    dump_s: float = 0.0
    load_s: float = 0.0
    points: int = 0
    dumped: int = 0
    loaded: int = 0
    dump_bytes: int = 0


def run(
    build: Build,
    data: list[dict[str, list[float]]],
    rounds: int,
    step_us: int,
    commit_every: int,
    record: list[float] | None = None,
) -> Timing:
    """Feed every device round by round, commit every ``commit_every`` rounds, restore at the end."""
    scorer = build.anomaly.AnomalyScorer(AnomalySettings())
    devices: list[dict[str, Any]] = [
        {m: scorer.new_series() for m in METRICS} for _ in range(len(data))
    ]
    observe: Callable[..., Any] = scorer.observe
    timing = Timing()
    labels: dict[str, str] = {}
    stored: list[bytes] = []
    for i in range(rounds):
        ts = 1_700_000_000_000_000 + i * step_us
        started = time.process_time()
        for d, device in enumerate(devices):
            values = data[d]
            for metric in METRICS:
                observe(device[metric], str(d), metric, ts, values[metric][i], labels)
        timing.score_s += time.process_time() - started
        timing.points += len(devices) * len(METRICS)
        if record is not None:
            record.extend(device[m].detector._last.score for device in devices[:5] for m in METRICS)
        if (i + 1) % commit_every == 0 or i == rounds - 1:
            started = time.process_time()
            stored = [dump_state(scorer.dump_device(device)) for device in devices]
            timing.dump_s += time.process_time() - started
            timing.dumped += len(devices) * len(METRICS)
    timing.dump_bytes = sum(len(raw) for raw in stored) // len(stored)
    started = time.process_time()
    for raw in stored:
        scorer.restore_device(load_state(raw))
    timing.load_s = time.process_time() - started
    timing.loaded = len(stored) * len(METRICS)
    return timing


def check_same(
    builds: list[Build], data: list[dict[str, list[float]]], rounds: int, step_us: int
) -> None:
    """Every build gives the same scores, also after a dump and restore half-way."""
    reference: list[float] | None = None
    for build in builds:
        scorer = build.anomaly.AnomalyScorer(AnomalySettings())
        scores: list[float] = []
        for d, values in enumerate(data[:20]):
            device = {m: scorer.new_series() for m in METRICS}
            for i in range(rounds):
                if i == rounds // 2:
                    device = scorer.restore_device(
                        load_state(dump_state(scorer.dump_device(device)))
                    )
                ts = 1_700_000_000_000_000 + i * step_us
                for metric in METRICS:
                    scorer.observe(device[metric], str(d), metric, ts, values[metric][i], {})
                    last = device[metric].detector._last
                    scores.extend((last.score, last.expected or 0.0, float(last.warm)))
        if reference is None:
            reference = scores
            continue
        worst = max(
            (abs(a - b) / max(1.0, abs(a)) for a, b in zip(reference, scores, strict=True)),
            default=0.0,
        )
        if worst > 1e-12:
            raise SystemExit(f"{build.label} differs from {builds[0].label}: {worst:.3g}")
        print(f"same scores: {builds[0].label} and {build.label} (largest difference {worst:.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200, help="devices, 5 metrics each")
    parser.add_argument("--rounds", type=int, default=300, help="readings per series")
    parser.add_argument("--step-s", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--commit-every", type=int, default=2, help="rounds per commit")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each build; best counts")
    parser.add_argument("--versus", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    gc.freeze()  # as `sentio stream worker` does (sentio_iot/cli/stream_cmd.py)
    gc.set_threshold(GC_THRESHOLD_YOUNG, 50, 100)
    builds = [Build("this build", anomaly_module)]
    if args.versus is not None:
        builds.append(Build(f"versus {args.versus}", load_versus(args.versus)))
    step_us = int(args.step_s * 1_000_000)
    data = workload(args.devices, args.rounds, args.step_s)
    if len(builds) > 1:
        check_same(builds, data, args.rounds, step_us)
    best: dict[str, Timing] = {}
    for _ in range(args.repeat):
        for build in builds:
            t = run(build, data, args.rounds, step_us, args.commit_every)
            old = best.get(build.label)
            if old is None or t.score_s + t.dump_s < old.score_s + old.dump_s:
                best[build.label] = t
    print(
        f"{args.devices} devices x {len(METRICS)} metrics, {args.rounds} readings each, "
        f"{args.step_s:g} s apart, a commit every {args.commit_every} rounds; "
        f"best of {args.repeat}"
    )
    print(
        "| build | score µs/point | commit dump µs/series | start restore µs/series "
        "| bytes/device | µs/point incl. commits |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, t in best.items():
        per_point = (t.score_s + t.dump_s) / t.points * 1e6
        print(
            f"| {label} | {t.score_s / t.points * 1e6:.2f} | {t.dump_s / t.dumped * 1e6:.2f} "
            f"| {t.load_s / t.loaded * 1e6:.2f} | {t.dump_bytes:,} | {per_point:.2f} |"
        )


if __name__ == "__main__":
    main()
