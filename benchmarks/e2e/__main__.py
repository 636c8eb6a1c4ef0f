"""``python -m benchmarks.e2e``: see the package docstring."""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    if args.smoke:
        args.rates, args.step_s, args.devices = SMOKE["rates"], SMOKE["step_s"], SMOKE["devices"]
    rates = [int(r) for r in args.rates.split(",")]
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    config, path = config_for(name, work)
    pipeline = Pipeline(config, path, work, args.workers)
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
        sent = producer.total
        print("== ceiling: bare confluent-kafka consuming and producing the same bytes", flush=True)
        top = ceiling(config, sent)
    finally:
        probe.stop()
        latency.stop()
        stopped = pipeline.stop()
        producer.close()
    print()
    print(Step.header())
    for step in steps:
        print(step.row())
    print(
        f"\nceiling (bare confluent-kafka, consume + produce the same bytes): {top:,.0f} readings/s"
    )
    kept = [s.offered for s in steps if s.kept_up()]
    print(
        f"highest rate every stage kept up with: {max(kept):,.0f} readings/s"
        if kept
        else "no step was kept up with"
    )
    print(f"stopping: {stopped}")
    if args.plot:
        from benchmarks.e2e.plot import plot

        plot(steps, top, args.plot)
        print(f"plot: {args.plot}")
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if steps else 1)


if __name__ == "__main__":
    started = time.monotonic()
    main()
