"""Memory soak: one stream worker fed many devices for minutes, its resident memory sampled.

    .venv/bin/python -m benchmarks.memory_soak [--devices 10000] [--rate 1500] [--minutes 10]

Against the local stack, on its own topic prefix and consumer group (``benchmarks.e2e``'s
configuration): one ``sentio stream worker`` with the default agents (rollups, device_state,
anomaly, rul, alerts), fed ``--devices`` pumps of five metrics (label ``kind: pump``, so the
RUL step keeps a window per device too) at ``--rate`` readings/s, each device in turn (every
``devices / rate`` seconds), stamped with the wall clock. Every ``--sample-s`` seconds it
prints the worker's RSS (``VmRSS`` of ``/proc/<pid>/status``), the readings it has
processed and its group's lag; at the end a table: RSS at 1, 2, 5 and 10 minutes (or the
run's end), the slope over the last five minutes (least squares, MB/min), peak RSS, the lag
at the end and the worker's CPU seconds.

A worker whose state is bounded shows RSS rising while new series arrive and their state
matures, then flat; what one series holds, warm and mature, is ``benchmarks/state_size.py``.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.e2e.load import PacedProducer
from benchmarks.e2e.stage import Pipeline, config_for, free_port, healthy
from benchmarks.state_size import PUMP, pump_reading
from benchmarks.streams_bench import metric

MARKS_MIN = (1, 2, 5, 10)


def vm_rss_mb(pid: int) -> float:
    """The resident memory of a running process now (Linux ``VmRSS``); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PumpProducer(PacedProducer):
    """``benchmarks.e2e``'s paced producer with pump readings: five metrics a RUL model
    serves (``state_size.pump_reading``), a spike now and then (anomalies,
    hence alert slots). Send times are not logged (no latency is measured here)."""

    def _send_one(self) -> None:
        index = self._next
        self._next += 1
        d = index % len(self.devices)
        device, step = self.devices[d], index // len(self.devices)
        reading = pump_reading(device, d, step, int(time.time() * 1_000_000))
        self.producer.produce(self.topic, self.encoder.encode(reading), device.encode())


def traced_worker(out: str, every_s: str, mode: str, *argv: str) -> None:
    """``sentio stream worker`` with a thread that looks at its memory every ``every_s``
    seconds and writes a line per look in ``out/gc.txt``.

    ``mode`` "trace": tracemalloc on (3 frames) from ``every_s`` seconds after the start (the
    imports untraced: TensorFlow's would take minutes), then a snapshot of every allocation
    made since and still live in ``out/snap-NNN.pickle``; the line: seconds, traced MB, the
    collector's collections per generation so far. ``mode`` "trim": glibc's ``malloc_trim(0)``
    (free heap pages handed back to the system); the line: seconds, RSS before and after MB;
    then CPython's allocator statistics (``sys._debugmallocstats``) to the worker's stderr,
    its log, where :func:`pymalloc` reads them.
    """
    import ctypes
    import gc
    import os
    import threading
    import tracemalloc

    from sentio_iot.cli.main import main as sentio

    folder, every, t0 = Path(out), float(every_s), time.monotonic()

    found: list[Any] = []

    def acked_line() -> str:
        """Offsets Faust's consumer holds as acked but not yet committed, and its gaps."""
        if not found:
            from faust.transport.consumer import Consumer

            found.extend(o for o in gc.get_objects() if isinstance(o, Consumer))
        acked = sum(len(v) for c in found for v in c._acked.values())
        index = sum(len(v) for c in found for v in c._acked_index.values())
        gaps = sum(len(v) for c in found for v in c._gap.values())
        most = max(
            ((len(v), tp.topic, tp.partition) for c in found for tp, v in c._acked.items()),
            default=(0, "", 0),
        )
        return f"acked {acked} index {index} gaps {gaps} most {most}"

    def look() -> None:
        if mode == "trace":
            time.sleep(every)
            tracemalloc.start(3)
        libc = ctypes.CDLL("libc.so.6") if mode == "trim" else None
        n = 0
        while True:
            time.sleep(every)
            n += 1
            if mode == "acks":
                line = acked_line()
            elif libc is not None:
                before = vm_rss_mb(os.getpid())
                libc.malloc_trim(0)
                line = f"{before:.0f} {vm_rss_mb(os.getpid()):.0f}"
                sys._debugmallocstats()
            else:
                tracemalloc.take_snapshot().dump(str(folder / f"snap-{n:03d}.pickle"))
                traced = tracemalloc.get_traced_memory()[0] / 1e6
                line = f"{traced:.1f} {[g['collections'] for g in gc.get_stats()]}"
            with (folder / "gc.txt").open("a") as log:
                log.write(f"{time.monotonic() - t0:.0f} {line}\n")

    threading.Thread(target=look, daemon=True).start()
    sys.argv = ["sentio", *argv]
    sentio()


PYMALLOC = (
    "# arenas allocated current",
    "# bytes in allocated blocks",
    "# bytes in available blocks",
    "unused pools",
)


def pymalloc(log: Path) -> None:
    """CPython's small-object allocator at each look (``sys._debugmallocstats`` in the log):
    arenas held (1 MiB each), bytes in live objects, bytes free inside held pools and arenas."""
    print("pymalloc: arenas held, MB in live blocks, MB in free blocks, MB in unused pools")
    found: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        for name in PYMALLOC:
            if line.startswith(name) or (name == "unused pools" and name in line):
                found[name] = int(line.rsplit("=", 1)[1].replace(",", "").strip())
                if name == "unused pools":
                    arenas = found.get(PYMALLOC[0], 0)
                    live, free = (found.get(k, 0) / 1e6 for k in PYMALLOC[1:3])
                    print(f"  {arenas:,}  {live:,.1f}  {free:,.1f}  {found[name] / 1e6:,.1f}")


def growth(folder: Path, top: int = 15) -> None:
    """Where traced memory grew between the second snapshot and the last one."""
    import tracemalloc

    snaps = sorted(folder.glob("snap-*.pickle"))
    if len(snaps) < 3:
        print("tracemalloc: fewer than three snapshots, nothing to compare")
        return
    print((folder / "gc.txt").read_text())
    first = tracemalloc.Snapshot.load(str(snaps[1]))
    last = tracemalloc.Snapshot.load(str(snaps[-1]))
    diff = last.compare_to(first, "lineno")
    total = sum(d.size_diff for d in diff)
    print(f"traced growth from {snaps[1].name} to {snaps[-1].name}: {total / 1e6:+.1f} MB")
    for stat in diff[:top]:
        print(f"  {stat}")
    for stat in last.compare_to(first, "traceback")[:5]:
        print(f"  {stat.size_diff / 1e6:+.2f} MB, {stat.count_diff:+,} blocks:")
        for line in stat.traceback.format():
            print(f"    {line}")


class WorkerOnly(Pipeline):
    """``benchmarks.e2e``'s pipeline reduced to one stream worker (no sinks); with
    ``trace_every_s``, the worker runs under :func:`traced_worker`."""

    trace_every_s: float = 0.0
    mode = "trace"  # or "trim": see traced_worker

    def groups(self) -> dict[str, str]:
        return {"streams": self.config.streams.app_id}

    def start(self) -> None:
        self.worker_ports = [free_port()]
        args = ["stream", "worker", "-c", str(self.path), "--web-port", str(self.worker_ports[0])]
        if self.trace_every_s:
            code = "import sys; from benchmarks.memory_soak import traced_worker as t; t(*sys.argv[1:])"
            folder, every = str(self.work / "trace"), str(self.trace_every_s)
            (self.work / "trace").mkdir(exist_ok=True)
            command = [sys.executable, "-c", code, folder, every, self.mode, *args]
            self._start("streams-1", command)
        else:
            self._start("streams-1", [*self.worker_command, *args])
        deadline = time.monotonic() + 180  # TensorFlow, the group join, table recovery
        while not healthy(self.worker_ports[0]):
            if self.procs[0].process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stream worker did not become healthy: see {self.work}")
            time.sleep(0.5)

    def group_lag(self) -> int | None:
        """The worker group's lag now (None while it cannot be read, e.g. a rebalance)."""
        try:
            return self.lag.measure(idle=True).get(self.config.streams.app_id)
        except Exception:  # the group is rebalancing for the moment
            return None


@dataclass
class Sample:
    at_s: float
    rss_mb: float
    processed: float
    lag: int | None


def slope_mb_per_min(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, MB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [s.at_s / 60 for s in samples]
    ys = [s.rss_mb for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def at_minute(samples: list[Sample], minute: float) -> Sample | None:
    """The sample nearest ``minute`` (None when the run was shorter)."""
    if not samples or samples[-1].at_s < minute * 60 - 5:
        return None
    return min(samples, key=lambda s: abs(s.at_s - minute * 60))


def report(samples: list[Sample], args: argparse.Namespace, worker: WorkerOnly) -> None:
    proc = worker.procs[0]
    print()
    print(
        f"memory soak: {args.devices:,} devices x {len(PUMP)} metrics at {args.rate:,.0f} "
        f"readings/s ({args.devices / args.rate:.1f} s between a device's readings), "
        f"{samples[-1].at_s / 60:.1f} min"
    )
    print(f"{'minute':>8}{'RSS MB':>10}{'processed':>12}{'lag':>10}")
    for minute in MARKS_MIN:
        found = at_minute(samples, minute)
        if found is not None:
            lag = "-" if found.lag is None else f"{found.lag:,}"
            print(
                f"{found.at_s / 60:>8.1f}{found.rss_mb:>10,.0f}{found.processed:>12,.0f}{lag:>10}"
            )
    end = samples[-1].at_s
    last = [s for s in samples if s.at_s >= end - 300]
    first = [s for s in samples if s.at_s <= 300]
    print(f"RSS slope over the last 5 min: {slope_mb_per_min(last):+.2f} MB/min")
    print(f"RSS slope over the first 5 min: {slope_mb_per_min(first):+.2f} MB/min")
    print(f"peak RSS (VmHWM): {proc.peak_rss_mb():,.0f} MB")
    print(f"lag at the end: {samples[-1].lag if samples[-1].lag is not None else '-'}")
    phases = worker.phases()
    if phases:
        print(
            "worker seconds by phase: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(phases.items()))
        )
    writes = metric(worker.worker_ports[0], "sentio_stream_state_writes_total")
    if writes >= 0:
        print(f"state records written: {writes:,.0f}")
    log = (worker.work / "streams-1.log").read_text(errors="replace")
    for said in ("Timer commit is overlapping", "producer buffer full", "rebalancing"):
        print(f"worker log lines with {said!r}: {log.count(said)}")
    print(f"worker CPU: {proc.cpu_s():,.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_soak", description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1500.0, help="readings/s offered")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--trim-every",
        type=float,
        default=0.0,
        metavar="S",
        help="call glibc's malloc_trim(0) in the worker every S seconds and print its RSS "
        "before and after (heap the allocator kept, not a leak, comes back)",
    )
    parser.add_argument(
        "--acks-every",
        type=float,
        default=0.0,
        metavar="S",
        help="every S seconds, count the offsets Faust's consumer in the worker holds as acked "
        "but not committed (and its gaps)",
    )
    parser.add_argument(
        "--trace-every",
        type=float,
        default=0.0,
        metavar="S",
        help="run the worker under tracemalloc, a snapshot every S seconds; print where the "
        "traced memory grew (slows the worker)",
    )
    parser.add_argument(
        "--worker-command",
        metavar="CMD",
        help="start the worker with this command instead of this build's `sentio` (another "
        "build: docs/benchmarks.md); `stream worker -c ...` is appended",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker's log")
    args = parser.parse_args()
    # a SIGTERM (e.g. from a shell that started the soak in the background) stops the worker
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    name = f"soak-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    config, path = config_for(name, work)
    worker = WorkerOnly(config, path, work, 1)
    worker.trace_every_s = args.trace_every or args.trim_every or args.acks_every
    worker.mode = "trim" if args.trim_every else "acks" if args.acks_every else "trace"
    if args.worker_command:
        worker.worker_command = shlex.split(args.worker_command)
    producer = PumpProducer(config, name, args.devices)
    samples: list[Sample] = []
    try:
        print(f"== starting the stream worker (log in {work})", flush=True)
        worker.start()
        pid, port = worker.procs[0].process.pid, worker.worker_ports[0]
        print(f"== {args.rate:,.0f} readings/s from {args.devices:,} devices", flush=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.minutes * 60:
            producer.run(args.rate, args.sample_s)
            if worker.procs[0].process.poll() is not None:
                raise SystemExit(f"the stream worker exited: see {work}")
            processed = metric(port, 'sentio_stream_events_total{agent="rollups"}')
            if processed < 0 and samples:  # /metrics did not answer in time: a busy worker
                processed = samples[-1].processed
            sample = Sample(time.monotonic() - t0, vm_rss_mb(pid), processed, worker.group_lag())
            samples.append(sample)
            print(
                f"  {sample.at_s:6.0f} s  RSS {sample.rss_mb:7,.0f} MB  processed "
                f"{processed:>10,.0f}  sent {producer.total:>10,}  lag {sample.lag}",
                flush=True,
            )
        report(samples, args, worker)
        if args.acks_every:
            print("Faust's consumer in the worker (seconds, offsets acked but not committed):")
            print((work / "trace" / "gc.txt").read_text())
        elif args.trim_every:
            print("malloc_trim in the worker (seconds, RSS MB before, after):")
            print((work / "trace" / "gc.txt").read_text())
            pymalloc(work / "streams-1.log")
        elif args.trace_every:
            growth(work / "trace")
    finally:
        print(f"stopping: {worker.stop()}")
        producer.close()
    if args.keep_logs:
        print(f"the worker's log: {work / 'streams-1.log'}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
