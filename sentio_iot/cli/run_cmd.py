"""``sentio run``: the main job on this machine.

For now: the local stack, the topic catalog, every schema registered, a round trip of Avro
readings through Kafka, and the simulated plant publishing through the producer runtime
(store-and-forward included). The streams and sinks join it as they land.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.config import SentioConfig


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
@click.option("--devices", default=50, show_default=True, help="Simulated devices in the plant.")
@click.option("--rate", default=2.0, show_default=True, help="Readings/s per simulated device.")
@click.option("--duration", default=20.0, show_default=True, help="Seconds the plant runs.")
def run(
    config_path: Path | None, count: int, no_stack: bool, devices: int, rate: float, duration: float
) -> None:
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
    click.echo(
        f"  {report.identical}/{report.sent} readings came back identical (schema id {report.schema_id})"
    )

    click.echo(f"== simulated plant: {devices} devices x {rate:g}/s for {duration:g} s")
    published = run_plant(config, devices=devices, rate=rate, duration=duration)
    ok = report.ok and published > 0
    click.echo(f"== {'ok' if ok else 'FAILED'}: {time.perf_counter() - began:.1f} s in all")
    if not no_stack:
        click.echo(
            "the stack keeps running: `sentio stack status` to look, `sentio stack down` to stop it"
        )
    if not ok:
        raise SystemExit(1)


def run_plant(config: SentioConfig, *, devices: int, rate: float, duration: float) -> int:
    """Run the simulated plant through the real producer runtime; return readings published."""
    import asyncio

    from sentio_iot.producers.runtime import ProducerRuntime
    from sentio_iot.stack.paths import StackPaths

    ground_truth = StackPaths(config.stack.home).state / "simulate-ground-truth.csv"
    plant = {"devices": devices, "rate": rate, "seed": 7, "ground_truth_path": str(ground_truth)}
    plant_config = config.model_copy(update={"producers": {"simulate": [plant]}})
    runtime = ProducerRuntime(plant_config, "simulate", progress_every_s=5.0)
    asyncio.run(runtime.run(duration_s=duration))
    metrics = runtime.publisher.metrics
    published = int(metrics.total(metrics.published))
    click.echo(
        f"  {published} readings published ({published / duration:,.0f}/s), "
        f"{metrics.total(metrics.buffered)} buffered, {metrics.total(metrics.dropped)} dropped; "
        f"ground truth of injected anomalies in {ground_truth}"
    )
    return published
