"""``sentio stack``: run the local stack (Kafka, registry, VictoriaMetrics, VictoriaLogs, Mosquitto)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load


@click.group("stack")
def stack_group() -> None:
    """Run Kafka, the schema registry, VictoriaMetrics, VictoriaLogs and Mosquitto on 127.0.0.1."""


@stack_group.command("up")
@config_option
@click.option(
    "--secure",
    is_flag=True,
    help="Kafka with SASL/SCRAM over TLS and ACLs per worker role, Mosquitto with users and "
    "ACLs, Alertmanager, VictoriaMetrics and VictoriaLogs with basic auth, the schema registry "
    "with OIDC through a Keycloak it starts too (a client per role); credentials and client "
    "settings are generated under the stack home (docs/security.md).",
)
def up(config_path: Path | None, secure: bool) -> None:
    """Install what is missing, start what is not running, wait until every service answers."""
    from sentio_iot.stack import Stack
    from sentio_iot.stack.kafka_secure import KafkaAccess

    config = load(config_path)
    access = KafkaAccess(config.topics.prefix, config.streams.app_id)
    Stack(config.stack, secure=secure, access=access).up(progress=click.echo)


@stack_group.command("down")
@config_option
def down(config_path: Path | None) -> None:
    """Stop the services `sentio stack up` started (nothing else)."""
    from sentio_iot.stack import Stack

    config = load(config_path)
    started = time.monotonic()
    stopped = Stack(config.stack).down(progress=click.echo)
    if stopped:
        click.echo(
            f"stack: stopped {len(stopped)} service(s) in {time.monotonic() - started:.1f} s"
        )
    else:
        click.echo("stack: nothing to stop")


@stack_group.command("status")
@config_option
def status(config_path: Path | None) -> None:
    """Show each service, its state, pid and address; exit 1 unless all are healthy."""
    from sentio_iot.stack import Stack

    config = load(config_path)
    statuses = Stack(config.stack).status()
    rows = [("SERVICE", "STATE", "PID", "ADDRESS", "DETAIL")]
    rows += [(s.name, s.state, str(s.pid) if s.pid else "-", s.address, s.detail) for s in statuses]
    _echo_table(rows)
    if not all(s.healthy for s in statuses):
        sys.exit(1)


def _echo_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
