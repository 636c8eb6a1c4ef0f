"""``python -m benchmarks.e2e``: see the package docstring."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.e2e.load import PacedProducer
from benchmarks.e2e.probes import CommitLatency, VmProbe, ceiling
from benchmarks.e2e.stage import Pipeline, Step, config_for

SMOKE = {"rates": "200", "step_s": 12.0, "devices": 100}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__)
    parser.add_argument("--rates", default="1000,2000,4000,8000", help="readings/s, rising")
    parser.add_argument("--step-s", type=float, default=60.0, help="seconds at each rate")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="stream workers")
    parser.add_argument("--plot", type=Path, help="write a PNG of the table here")
    parser.add_argument("--smoke", action="store_true", help="one small step: that it runs")
    parser.add_argument(
        "--quix",
        action="store_true",
        help="also run the rollups + z-score stage written with Quix Streams on the same readings",
    )
    parser.add_argument(
        "--restart-after",
        type=float,
        metavar="S",
        help="add a step (at --restart-rate) that SIGKILLs the first stream worker S seconds in",
    )
    parser.add_argument(
        "--down", type=float, default=15.0, metavar="S", help="seconds before it is started again"
    )
    parser.add_argument(
        "--restart-rate", type=int, help="readings/s of the restart step (default: the first rate)"
    )
    parser.add_argument(
        "--commit-interval",
        type=float,
        metavar="S",
        help="the stream workers' streams.commit_interval_s (default: the setting's, 2 s)",
    )
    parser.add_argument(
        "--beside-commit-interval",
        type=float,
        metavar="S",
        help="also run one stream worker in its own group with this commit interval on the "
        "same readings (rows streams@<S>s): latency and CPU of two intervals in one run",
    )
    parser.add_argument(
        "--beside-batch-within",
        type=float,
        metavar="S",
        help="with --beside-commit-interval: that group's longest wait to fill a batch "
        "(streams.batch_within_s and streams.rul.max_wait_s; rows streams@<S>s,within<W>s)",
    )
    parser.add_argument(
        "--worker-command",
        metavar="CMD",
        help="start the stream workers with this command instead of this build's `sentio` "
        "(e.g. an older checkout: docs/benchmarks.md); `stream worker -c ...` is appended",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the processes' logs (their folder is printed)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.rates, args.step_s, args.devices = SMOKE["rates"], SMOKE["step_s"], SMOKE["devices"]
    rates = [int(r) for r in args.rates.split(",")]
    if args.beside_batch_within is not None and args.beside_commit_interval is None:
        parser.error("--beside-batch-within needs --beside-commit-interval")
    if args.restart_after is not None and args.restart_after + args.down >= args.step_s:
        parser.error("--restart-after + --down must leave time in --step-s to catch up")
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    config, path = config_for(name, work, args.commit_interval)
    pipeline = Pipeline(
        config,
        path,
        work,
        args.workers,
        quix=args.quix,
        beside_interval_s=args.beside_commit_interval,
        beside_within_s=args.beside_batch_within,
    )
    if args.worker_command:
        pipeline.worker_command = shlex.split(args.worker_command)
    producer = PacedProducer(config, name, args.devices)
    latency = CommitLatency(config, producer.sent, pipeline.groups())
    probe = VmProbe(producer.probe_device, producer.probe_metric)
    steps: list[Step] = []
    try:
        print(
            f"== starting {args.workers} stream worker(s) and 2 sinks (logs in {work})", flush=True
        )
        pipeline.start()
        latency.start()
        probe.start()
        for rate in rates:
            print(f"== {rate:,} readings/s for {args.step_s:.0f} s", flush=True)
            steps.append(pipeline.step(rate, args.step_s, producer, latency, probe))
            print(steps[-1].line(), flush=True)
        if args.restart_after is not None:
            rate = args.restart_rate or rates[0]
            print(
                f"== {rate:,} readings/s for {args.step_s:.0f} s, the stream worker SIGKILLed "
                f"{args.restart_after:.0f} s in and started {args.down:.0f} s later",
                flush=True,
            )
            restart = (args.restart_after, args.down)
            steps.append(pipeline.step(rate, args.step_s, producer, latency, probe, restart))
            print(steps[-1].line(), flush=True)
        sent = producer.total
        print("== ceiling: bare confluent-kafka consuming and producing the same bytes", flush=True)
        top = ceiling(config, sent)
    finally:
        stopped = pipeline.stop()  # first: a failed probe must not leave workers running
        probe.stop()
        latency.stop()
        producer.close()
    print()
    print(Step.header())
    for step in steps:
        if step.restart is not None:
            print("-- the restart step: the stream worker SIGKILLed and started again mid-step")
        print(step.row())
    print(
        f"\nceiling (bare confluent-kafka, consume + produce the same bytes): {top:,.0f} readings/s"
    )
    for step in steps:
        print(
            f"{step.offered:,.0f}/s: stream workers' CPU per reading taken: {step.cpu_per_reading()}"
        )
    for step in steps:
        if step.restart is not None:
            print(step.restart.line())
    rising = [s for s in steps if s.restart is None]
    kept = [s.offered for s in rising if s.kept_up()]
    print(
        f"highest rate every stage kept up with: {max(kept):,.0f} readings/s"
        if kept
        else "no step was kept up with"
    )
    if args.quix:
        quix = [s.offered for s in rising if s.kept_up("quix")]
        print(
            f"highest rate the Quix Streams stage kept up with: {max(quix):,.0f} readings/s"
            if quix
            else "the Quix Streams stage kept up with no step"
        )
    print(f"stopping: {stopped}")
    if args.plot:
        from benchmarks.e2e.plot import plot

        plot(rising, top, args.plot)  # the restart step is not on the rising axis
        print(f"plot: {args.plot}")
    if args.keep_logs:
        print(f"logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if steps else 1)


if __name__ == "__main__":
    started = time.monotonic()
    main()
