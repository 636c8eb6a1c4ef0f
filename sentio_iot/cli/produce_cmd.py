"""``sentio produce <protocol>``: run the configured connectors of one protocol into Kafka."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.plugins import connector_names, load_connector_plugin
from sentio_iot.telemetry import configure_logging


@click.command("produce")
@click.argument("protocol", required=False)
@config_option
@click.option(
    "--list", "list_connectors", is_flag=True, help="List the installed connectors and exit."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds.",
)
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds between progress lines (rates, buffer, drops).",
)
@click.pass_context
def produce(
    ctx: click.Context,
    protocol: str | None,
    config_path: Path | None,
    list_connectors: bool,
    duration: float | None,
    progress_every: float,
) -> None:
    """Poll or subscribe to the devices under producers.PROTOCOL and publish to Kafka.

    While Kafka is unreachable, readings go to a disk buffer and are sent, in order, when it
    returns. SIGINT/SIGTERM close the connectors, flush, and exit 0; what Kafka did not
    confirm stays in the buffer for the next start.
    """
    if list_connectors:
        for name in connector_names():
            plugin = load_connector_plugin(name)
            extra = f"  (pip install 'sentio-iot[{plugin.extra}]')" if plugin.extra else ""
            click.echo(f"{name:<18} {plugin.summary}{extra}")
        return
    if not protocol:
        names = ", ".join(connector_names()) or "none installed"
        raise click.UsageError(f"name a protocol ({names}) or use --list")

    from sentio_iot.producers.runtime import ProducerRuntime
    from sentio_iot.tracing import configure_tracing

    config = load(config_path)
    if not (ctx.obj and ctx.obj.get("debug")):
        configure_logging(getattr(logging, config.log_level))
    tracing = configure_tracing(config, "sentio-producer")  # before the publisher's tracer
    runtime = ProducerRuntime(config, protocol, progress_every_s=progress_every)
    try:
        asyncio.run(runtime.run(duration_s=duration))
    finally:
        if tracing is not None:
            tracing.shutdown()  # export the last spans
