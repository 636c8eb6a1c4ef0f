"""``sentio stream worker``: run the Faust stream agents (rollups, device state, ...)."""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.telemetry import configure_logging

GC_THRESHOLD_YOUNG = 100_000  # allocations between young collections (CPython: 700)


@click.group("stream")
def stream_group() -> None:
    """The stream processing workers (Faust, exactly once)."""


@stream_group.command("worker")
@config_option
@click.option(
    "--web-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port of /health and /metrics (default streams.web_port; one per worker on a host).",
)
@click.option(
    "--agents",
    default=None,
    help="Comma-separated agents to run (default streams.agents), e.g. rollups,device_state.",
)
@click.pass_context
def worker(
    ctx: click.Context, config_path: Path | None, web_port: int | None, agents: str | None
) -> None:
    """Consume the catalog topics and run the agents until SIGTERM/SIGINT.

    Workers with the same streams.app_id share the partitions: start another to scale out.
    SIGTERM finishes the batch in hand, commits its transaction and exits 0.
    """
    import faust

    from sentio_iot.streams.app import StreamApp
    from sentio_iot.tracing import configure_tracing

    config = load(config_path)
    debug = bool(ctx.obj and ctx.obj.get("debug"))
    level = logging.DEBUG if debug else getattr(logging, config.log_level)
    configure_logging(level)
    if level > logging.DEBUG:  # Faust's own INFO lines (every service start/stop) drown ours
        for noisy in ("faust", "mode", "aiokafka"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    names = [a.strip() for a in agents.split(",") if a.strip()] if agents else None
    app = StreamApp(config, agents=names, web_port=web_port)
    app.prepare()
    provider = configure_tracing(config, "sentio-streams")
    tune_garbage_collector()
    code: int | str | None = 0
    try:
        faust.Worker(
            app.faust,
            loglevel=logging.getLevelName(level),
            quiet=True,
            override_logging=False,
        ).execute_from_commandline()
    except SystemExit as stopped:  # how Faust's worker ends, after its services stopped
        code = stopped.code
    finally:
        app.close()
        if provider is not None:
            provider.shutdown()
    # Everything is committed and closed. The interpreter's own teardown (TensorFlow,
    # Faust's threads) took another 2.5 s after a SIGTERM under load (docs/benchmarks.md):
    # flush the logs and leave at once.
    if isinstance(code, str):
        print(code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1 if code else 0)


def tune_garbage_collector() -> None:
    """Collect garbage rarely: the worker keeps millions of long-lived objects (every device's
    detector, window and RUL state), and each of CPython's collections walks a generation of
    them. With the default thresholds a commit's state export ran 3.6 times slower than with
    the collector off (docs/benchmarks.md). What was loaded at start-up (TensorFlow, Faust) is
    frozen out of every collection; reference cycles are still collected, just in bigger steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_YOUNG, 50, 100)
