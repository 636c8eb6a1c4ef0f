"""The stream stage against Faust's own ceiling, on the same pre-produced readings in one run.

    .venv/bin/python -m benchmarks.stream_stage [--readings 60000] [--devices 1000] [--metrics 5]
    .venv/bin/python -m benchmarks.stream_stage --smoke        # CI: that it runs, in ~30 s
    ... --versus "before=.venv/bin/python /path/to/other_sentio.py"   # another build, same run
    ... --pumps     # pump readings the shipped RUL model serves (else the RUL step does nothing)

Produces the readings once (Avro, 6 partitions), then runs on them, one after the other:

1. a trivial Faust agent (exactly once, ``stream.take_events(5000, within=1.0)``) that only
   counts the messages: what Faust itself costs, the ceiling for any Faust agent here; then
   the same agent on the stream worker's consumer (``faust_ext.SentioConsumer``);
2. ``sentio stream worker`` with the default agents (rollups, device_state, anomaly, rul,
   alerts), exactly once;
3. each ``--versus LABEL=COMMAND``: the same worker started by another command (e.g. an older
   checkout of Sentio), each on its own consumer group.

Sustained readings/s = readings after the first batch / time from the first batch to the last.
Prints both rates, their ratio, the worker's time by phase, its state writes and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from benchmarks.state_size import PUMP, pump_reading
from benchmarks.streams_bench import T0, S, free_port, make_config, metric, produce, readings

STEPS = ("rollups", "device_state", "anomaly", "rul")
PHASES = (
    "process_batch",
    "wait_for_commit",
    "commit",
    "flush_live_states",
    "wait_state_acks",
    "commit_transactions",
)


def count_agent(
    bootstrap: str, topic: str, app_id: str, expected: int, out: Path, sentio: bool = False
) -> None:
    """The trivial agent (run in its own process): count messages, write first/last times;
    ``sentio``: on the stream worker's consumer (``faust_ext.SentioTransport``)."""
    import faust

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        processing_guarantee="exactly_once",
        store="memory://",
        datadir=str(out.parent / app_id),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
    )
    if sentio:
        from sentio_iot.streams.faust_ext import SentioTransport

        app.transport = SentioTransport(app.conf.broker_consumer, app)
    source = app.topic(topic, key_type=bytes, value_type=bytes)
    seen = {"n": 0, "first": 0.0, "first_n": 0}

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(5000, within=1.0):
            seen["n"] += len(events)
            if not seen["first"]:
                seen["first"], seen["first_n"] = time.monotonic(), seen["n"]
            if seen["n"] >= expected:
                seconds = time.monotonic() - seen["first"]
                out.write_text(f"{seen['n'] - seen['first_n']} {seconds}\n")
                os.kill(os.getpid(), signal.SIGTERM)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    asyncio.set_event_loop(worker.loop)
    worker.execute_from_commandline()


def run_count_agent(config_path: Path, count: int, work: Path, sentio: bool = False) -> float:
    from sentio_iot.config import load_config
    from sentio_iot.schemas.catalog import spec

    config = load_config(config_path)
    label = "count-sentio" if sentio else "count"
    out = work / f"{label}.txt"
    topic = spec("readings").topic(config.topics)
    code = (
        "import sys; from pathlib import Path; from benchmarks.stream_stage import count_agent; "
        "count_agent(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]), "
        "sys.argv[6] == '1')"
    )
    args = [config.kafka.bootstrap_servers, topic, f"{config.streams.app_id}-{label}", str(count)]
    log = (work / f"{label}.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args, str(out), "1" if sentio else "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        child.wait(600)
    finally:
        if child.poll() is None:
            child.kill()
    done, seconds = out.read_text().split()
    return int(done) / max(float(seconds), 1e-9)


def run_stage(
    config_path: Path,
    count: int,
    work: Path,
    label: str = "sentio",
    sentio: str = "",
    stop_at: int | None = None,
) -> dict[str, float]:
    """Run one worker over the readings; with ``stop_at``, SIGTERM it once it has processed
    that many (the rest still waiting: a stop under load) and report only the stop."""
    port = free_port()
    config = yaml.safe_load(config_path.read_text())
    config["streams"]["app_id"] += f"-{label}"
    config["streams"]["state_dir"] = str(work / f"state-{label}")
    own = work / f"{label}.yaml"
    own.write_text(yaml.safe_dump(config))
    prefix = shlex.split(sentio) if sentio else [str(Path(sys.executable).with_name("sentio"))]
    command = [*prefix, "stream", "worker", "-c", str(own), "--web-port", str(port)]
    log = (work / f"stage-{label}.log").open("wb")
    worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    first = (0.0, 0.0)
    done = 0.0
    cpu_first = 0.0
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and worker.poll() is None:
            done = min(metric(port, f'sentio_stream_events_total{{agent="{s}"}}') for s in STEPS)
            if done > 0 and not first[0]:
                first = (time.monotonic(), done)
                cpu_first = cpu_seconds(worker.pid)
                print(f"  {label}: first batch after start-up ({done:,.0f} readings)", flush=True)
            if done >= (stop_at or count):
                break
            time.sleep(0.2)
        last = time.monotonic()
        cpu_used = cpu_seconds(worker.pid) - cpu_first
        found = {p: metric(port, f'sentio_stream_seconds_total{{phase="{p}"}}') for p in PHASES}
        found["state_writes"] = metric(port, "sentio_stream_state_writes_total")
        found["rss_mb"] = peak_rss_mb(worker.pid)
    finally:
        t = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        found["exit"] = worker.wait(60)
        found["stop_s"] = time.monotonic() - t
    if stop_at is not None:
        found["backlog"] = count - done
        return found
    if done < count:
        raise SystemExit(f"the stream worker processed {done:,.0f} of {count:,}: see {log.name}")
    found["rate"] = (done - first[1]) / max(last - first[0], 1e-9)
    # CPU time per reading: what other processes on a shared machine disturb least
    found["cpu_us"] = cpu_used / max(done - first[1], 1) * 1e6
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux ``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a running process (Linux ``VmHWM``); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=60_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="small and quick: that it runs")
    parser.add_argument(
        "--detector",
        default=None,
        help="streams.anomaly.detector for every worker (default: the configured default); "
        "pin one to compare builds whose defaults differ",
    )
    parser.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="LABEL=COMMAND",
        help="also run the worker started by COMMAND (instead of `sentio`), on the same readings",
    )
    parser.add_argument(
        "--only-versus",
        action="store_true",
        help="run only the --versus workers, not this checkout's (e.g. two archived builds, "
        "when the working tree holds other unfinished changes)",
    )
    parser.add_argument(
        "--pumps",
        action="store_true",
        help="pump readings (benchmarks.state_size: five pump metrics, label kind: pump) that "
        "the shipped RUL model serves, so the RUL step keeps windows and predicts; without it "
        "no model serves the readings and the RUL step does no work",
    )
    parser.add_argument(
        "--stop-under-load",
        action="store_true",
        help="also time a SIGTERM to each worker after a third of the readings (the rest waiting)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.readings, args.devices = 3000, 100
    name = f"bench-stage-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=name))
    try:
        config_path, config = make_config(work, name, 6)
        if args.detector:
            raw = yaml.safe_load(config_path.read_text())
            raw["streams"]["anomaly"] = {"detector": args.detector}
            config_path.write_text(yaml.safe_dump(raw))
        print(f"anomaly detector: {args.detector or 'the default'}", flush=True)
        if args.pumps:
            args.metrics = len(PUMP)
            data = [
                pump_reading(
                    f"pump-{i % args.devices:05d}",
                    i % args.devices,
                    i // args.devices,
                    T0 + (i // args.devices) * S,
                )
                for i in range(args.readings)
            ]
        else:
            data = readings(args.readings, args.devices, args.metrics)
        print(
            f"readings: {'pumps (the RUL model serves them)' if args.pumps else 'plain (no RUL model serves them)'}",
            flush=True,
        )
        t = time.perf_counter()
        produce(config, data)
        print(
            f"produced {len(data):,} readings x {args.metrics} metrics, {args.devices:,} "
            f"devices, 6 partitions in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        ceiling = run_count_agent(config_path, len(data), work)
        print(f"  count agent: {ceiling:,.0f} readings/s", flush=True)
        ours = run_count_agent(config_path, len(data), work, sentio=True)
        print(f"  count agent on Sentio's consumer: {ours:,.0f} readings/s", flush=True)
        stages: dict[str, dict[str, float]] = {}
        if not args.only_versus:
            stages["sentio"] = run_stage(config_path, len(data), work)
        for versus in args.versus:
            label, _, command = versus.partition("=")
            stages[label] = run_stage(config_path, len(data), work, label, command)
        print()
        print(f"{'stream stage (same readings, one run)':<52}{'readings/s':>12}{'points/s':>12}")
        print(f"{'trivial Faust agent, counts only (EOS)':<52}{ceiling:>12,.0f}{'-':>12}")
        print(f"{'the same on SentioConsumer (faust_ext.py)':<52}{ours:>12,.0f}{'-':>12}")
        for label, stage in stages.items():
            name = f"{label}: stream worker, 5 default agents (EOS)"
            points = stage["rate"] * args.metrics
            print(f"{name:<52}{stage['rate']:>12,.0f}{points:>12,.0f}")
        for label, stage in stages.items():
            ratio = (
                f"{stage['rate'] / ceiling:.2f}" if ceiling else "- (too few readings to time it)"
            )
            print(f"ratio {label} / trivial agent: {ratio}")
        for label, stage in stages.items():
            print(f"\n{label}:")
            for phase in PHASES:
                print(f"  worker seconds in {phase:<24}{stage[phase]:>10.2f}")
            print(f"  worker CPU per reading            {stage['cpu_us']:>10,.0f} us")
            print(f"  state writes (changelog records)  {stage['state_writes']:>12,.0f}")
            print(f"  peak RSS                          {stage['rss_mb']:>10,.0f} MB")
            print(
                f"  SIGTERM to exit                   {stage['stop_s']:>10.1f} s "
                f"(exit {stage['exit']:.0f})"
            )
        if args.stop_under_load:
            print()
            this = [] if args.only_versus else [("sentio", "")]
            for label, command in [*this, *(v.partition("=")[::2] for v in args.versus)]:
                stop = run_stage(
                    config_path, len(data), work, f"{label}-stop", command, len(data) // 3
                )
                print(
                    f"{label}: SIGTERM under load to exit {stop['stop_s']:.1f} s "
                    f"(exit {stop['exit']:.0f}, {stop['backlog']:,.0f} readings still waiting)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
