"""End to end: paced readings through the stream workers and the sinks at rising rates.

    .venv/bin/python -m benchmarks.e2e [--rates 1000,2000,4000] [--step-s 60] [--workers 1]
    .venv/bin/python -m benchmarks.e2e --smoke      # CI: that it runs (about 30 s)

On its own topic prefix and consumer groups, against the local stack: ``--workers`` stream
workers with the default agents, the VictoriaMetrics and Loki sinks, each a ``sentio``
process; the benchmark itself produces the readings (1,000 devices, 5 metrics each, stamped
with the wall clock) at each rate for ``--step-s`` seconds. Per step it prints:

- readings/s offered, and taken by each stage (offered minus the growth of its lag);
- whether the stage kept up (its lag at the end below two seconds of input);
- latency p50/p99 from a reading's send to the moment its stage had committed it (for the
  streams: its anomaly score, device state and rollup contribution are visible to
  read_committed consumers; for a sink: VictoriaMetrics or Loki confirmed the write), over
  the second half of the step; and reading → queryable in VictoriaMetrics for one probe
  device (``/api/v1/export`` polled every 0.1 s);
- send -> acknowledged by the broker (row ``produce (acked)``), the first stage of the
  latency breakdown: acked -> committed by the streams -> written by the sink -> queryable;
- CPU seconds and peak RSS of every process, and each stream worker group's CPU per reading
  taken.

Then the ceiling: bare confluent-kafka consuming the same readings and producing the same
bytes again. The table goes to stdout and, with ``--plot PATH`` (needs matplotlib), a PNG.

``--quix``: the same rollups + z-score anomaly stage written with Quix Streams
(``benchmarks/e2e/quix_stage.py``, exactly once) runs beside ours on the same readings in its
own consumer group, measured the same way (its rows are ``quix`` and ``quix-stage``); it
shares the machine's CPU with the pipeline, as every stage does.

``--restart-after S --down D``: after the rising steps, one more step (at ``--restart-rate``,
default the first rate) in which the first stream worker is SIGKILLed S seconds in and
started again D seconds later; the worker group's lag (``ConsumerLag``, every 0.5 s) is
followed until it is back to the highest lag seen before the kill. Printed: the peak lag,
the seconds from the restart (and from the kill) to that level, and the catch-up rate
(offered + lag worked off per second from the peak), also as a multiple of the offered rate,
and when the restarted worker was healthy and had done its first batch.

``--commit-interval S``: the workers' ``streams.commit_interval_s``. ``--beside-commit-interval
S``: a second stream worker group (its own app id, same readings and output topics) with that
interval, rows ``streams@<S>s``: two intervals' latency and CPU in one run;
``--beside-batch-within W`` also gives that group W as its longest wait to fill a batch (rows
``streams@<S>s,within<W>s``).
``--worker-command CMD``: start the stream workers with another build (docs/benchmarks.md,
fifth round). ``--keep-logs``: keep the processes' logs.
"""
