"""``sentio sink <backend>``: consume Sentio's topics and write them to one backend."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.errors import ConfigError
from sentio_iot.plugins import load_sink_plugin, sink_names
from sentio_iot.telemetry import configure_logging


@click.command("sink")
@click.argument("backend", required=False)
@config_option
@click.option("--list", "list_sinks", is_flag=True, help="List the installed sinks and exit.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds.",
)
@click.option(
    "--group-id",
    default=None,
    help="Kafka consumer group. Default: sentio-sink-BACKEND, or PREFIXsink-BACKEND with another topic prefix (processes with one group share partitions).",
)
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds between progress lines (records written per second).",
)
@click.pass_context
def sink(
    ctx: click.Context,
    backend: str | None,
    config_path: Path | None,
    list_sinks: bool,
    duration: float | None,
    group_id: str | None,
    progress_every: float,
) -> None:
    """Write what flows on Kafka to BACKEND (victoriametrics, loki, tempo, homeassistant,
    alertmanager, webhook).

    Each backend is its own consumer group (sentio-sink-BACKEND): start several processes to
    share the partitions. Offsets are committed only after the backend took the records.
    SIGINT/SIGTERM write the open batch, commit and exit 0.
    """
    if list_sinks:
        for name in sink_names():
            try:
                summary = load_sink_plugin(name).summary
            except ConfigError as exc:
                summary = f"(cannot be loaded: {exc})"
            click.echo(f"{name:<16} {summary}")
        return
    if not backend:
        names = ", ".join(sink_names()) or "none installed"
        raise click.UsageError(f"name a sink ({names}) or use --list")
    load_sink_plugin(backend)  # an unknown name answers with the names that exist

    from sentio_iot.sinks.runtime import SinkRuntime
    from sentio_iot.tracing import configure_tracing

    config = load(config_path)
    if not (ctx.obj and ctx.obj.get("debug")):
        configure_logging(getattr(logging, config.log_level))
    provider = configure_tracing(config, f"sentio-sink-{backend}")
    try:
        runtime = SinkRuntime(config, backend, group_id=group_id, progress_every_s=progress_every)
        asyncio.run(runtime.run(duration_s=duration))
    finally:
        if provider is not None:
            provider.shutdown()  # the last batches' spans
