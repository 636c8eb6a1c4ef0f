"""``sentio run``: the main job on this machine.

For now: the local stack, the topic catalog, every schema registered, and a round trip of
Avro readings through Kafka. The producers, streams and sinks join it as they land.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load


@click.command("run")
@config_option
@click.option(
    "--count", default=10_000, show_default=True, help="Readings to send in the round trip."
)
@click.option(
    "--no-stack",
    is_flag=True,
    help="Use Kafka and the registry from the configuration; start nothing.",
)
def run(config_path: Path | None, count: int, no_stack: bool) -> None:
    """Start the local stack and run the pipeline end to end on this machine."""
    from sentio_iot.registry import SchemaRegistry
    from sentio_iot.schemas.catalog import CATALOG
    from sentio_iot.serde import AvroSerde
    from sentio_iot.smoke import round_trip
    from sentio_iot.stack import Stack
    from sentio_iot.topic_admin import apply_topics

    config = load(config_path)
    began = time.perf_counter()
    if not no_stack:
        click.echo("== local stack")
        Stack(config.stack).up(progress=lambda line: click.echo(f"  {line}"))

    click.echo("== topics")
    changes = apply_topics(config)
    click.echo(
        f"  {len(changes)} change(s) applied"
        if changes
        else f"  all {len(CATALOG)} topics match the catalog"
    )

    click.echo("== schemas")
    with SchemaRegistry(config.schema_registry) as registry:
        for spec in CATALOG:
            if spec.value_schema:
                topic = spec.topic(config.topics)
                schema_id = AvroSerde(registry, topic, spec.value_schema).register()
                click.echo(f"  {topic}-value: {spec.value_schema} registered as id {schema_id}")

    click.echo("== round trip")
    topic = CATALOG[0].topic(config.topics)
    report = round_trip(config, topic, count, progress=lambda line: click.echo(f"  {line}"))
    status = "ok" if report.ok else "FAILED"
    click.echo(
        f"== {status}: {report.identical}/{report.sent} readings came back identical "
        f"(schema id {report.schema_id}); {time.perf_counter() - began:.1f} s in all"
    )
    if not no_stack:
        click.echo(
            "the stack keeps running: `sentio stack status` to look, `sentio stack down` to stop it"
        )
    if not report.ok:
        raise SystemExit(1)
