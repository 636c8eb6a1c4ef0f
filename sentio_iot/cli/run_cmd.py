"""``sentio run``: the main job, the whole pipeline on this machine.

The local stack (reused when it is up), the topic catalog and every schema (idempotent), an
optional round trip of Avro readings through Kafka, then the pipeline as child processes:
the simulated plant, the stream workers and the sinks, watched in a live view (or one
progress line now and then when headless) until ``--duration`` is over or Ctrl-C.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.config import SentioConfig
from sentio_iot.pipeline.plant import DEFAULT_SIZE, DEVICE_RATE, DeviceCount
from sentio_iot.pipeline.secure_roles import SecureRoles, as_admin, secure_roles


@click.command("run")
@config_option
@click.option(
    "--devices",
    type=DeviceCount(),
    default=DEFAULT_SIZE,
    show_default=True,
    help="Simulated devices: a number, or small (24), medium (200), large (1000).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=DEVICE_RATE,
    show_default=True,
    help="Readings/s per simulated device.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds the pipeline runs; default: until Ctrl-C.",
)
@click.option(
    "--headless",
    is_flag=True,
    help="No live view: a progress line every 10 s and a summary (automatic without a terminal).",
)
@click.option(
    "--stream-workers",
    type=click.IntRange(min=1, max=4),
    default=1,
    show_default=True,
    help="Stream workers sharing the partitions (web ports 6066 and up).",
)
@click.option(
    "--count",
    type=click.IntRange(min=0),
    default=1_000,
    show_default=True,
    help="Readings sent in the Avro round trip before the pipeline starts; 0 skips it.",
)
@click.option(
    "--no-stack",
    is_flag=True,
    help="Use Kafka and the registry from the configuration; start nothing.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Start clean: delete the topics, consumer groups and stream state an earlier run left.",
)
@click.option(
    "--secure",
    is_flag=True,
    help="Kafka with SASL/SCRAM over TLS (`sentio stack up --secure`): each worker runs with "
    "its role's credentials. Automatic when kafka.bootstrap_servers is the secure stack's "
    "listener and no kafka.sasl_username is set (docs/security.md).",
)
def run(
    config_path: Path | None,
    devices: int,
    rate: float,
    duration: float | None,
    headless: bool,
    stream_workers: int,
    count: int,
    no_stack: bool,
    fresh: bool,
    secure: bool,
) -> None:
    """Run the whole pipeline on this machine: plant -> Kafka -> streams -> sinks, live."""
    from sentio_iot.pipeline.main_job import PlantSize, run_pipeline

    began = time.monotonic()
    config = load(config_path)
    roles = prepare(config, no_stack=no_stack, count=count, fresh=fresh, secure=secure)
    outcome = run_pipeline(
        config,
        PlantSize(devices, rate, duration),
        headless=headless or not sys.stdout.isatty(),
        stream_workers=stream_workers,
        out=sys.stdout,
        began=began,
        roles=roles,
    )
    if not no_stack:
        click.echo("the stack keeps running: `sentio stack down` stops it")
    # A worker this install or machine cannot run (said in one line) does not fail the run.
    if not outcome.published or outcome.failed:
        raise SystemExit(1)


def prepare(
    config: SentioConfig, *, no_stack: bool, count: int, fresh: bool = False, secure: bool = False
) -> SecureRoles | None:
    """The stack up (or reused), topics and schemas as the catalog says, the round trip;
    an earlier run's backlog said (or, with ``fresh``, deleted first). On the secure stack
    (``secure``, or detected: secure_roles.py) all that as ``admin``; returns the roles."""
    from confluent_kafka import Consumer

    from sentio_iot.kafka import consumer_config
    from sentio_iot.pipeline.topics_ready import wait_for_partitions
    from sentio_iot.registry import SchemaRegistry
    from sentio_iot.schemas.catalog import CATALOG
    from sentio_iot.serde import AvroSerde
    from sentio_iot.smoke import round_trip
    from sentio_iot.stack import Stack
    from sentio_iot.stack.kafka_secure import KafkaAccess
    from sentio_iot.topic_admin import apply_topics

    # --secure may start the secure stack first, which writes the roles' settings.
    roles = None if secure and not no_stack else secure_roles(config, secure=secure)
    if not no_stack:
        click.echo("== local stack")
        access = KafkaAccess(config.topics.prefix, config.streams.app_id)
        Stack(config.stack, secure=secure or roles is not None, access=access).up(
            progress=lambda line: click.echo(f"  {line}")
        )
    if roles is None and secure:
        roles = secure_roles(config, secure=True)
    if roles is not None:
        click.echo(
            f"== secure Kafka at {roles.bootstrap}: each worker with its role's credentials "
            f"({roles.clients}/<role>.yaml), this run as admin"
        )
        config = as_admin(config, roles)

    from sentio_iot.pipeline.fresh import backlog, start_fresh

    if fresh:
        start_fresh(config, click.echo)
    else:
        behind = backlog(config)
        if behind:
            listed = ", ".join(f"{group} {lag:,}" for group, lag in sorted(behind.items()))
            click.echo(
                f"== backlog from an earlier run (messages behind): {listed}; the stages read "
                "it first (the view shows how fast they catch up); `--fresh` starts clean"
            )
    changes = apply_topics(config)
    click.echo(
        f"== topics: {len(changes)} change(s) applied"
        if changes
        else f"== topics: all {len(CATALOG)} match the catalog"
    )
    with SchemaRegistry(config.schema_registry) as registry:
        ids = [
            AvroSerde(registry, spec.topic(config.topics), spec.value_schema).register()
            for spec in CATALOG
            if spec.value_schema
        ]
    click.echo(f"== schemas: {len(ids)} registered (ids {', '.join(map(str, ids))})")

    if count:
        topic = CATALOG[0].topic(config.topics)
        if changes:  # just created: wait until its partitions have leaders that answer
            consumer = Consumer(consumer_config(config.kafka, "sentio-run-topic-check"))
            try:
                wait_for_partitions(consumer, [topic])
            finally:
                consumer.close()
        report = round_trip(config, topic, count, progress=lambda line: None)
        click.echo(f"== round trip: {report.identical}/{report.sent} readings came back identical")
        if not report.ok:
            raise SystemExit(1)
    return roles
