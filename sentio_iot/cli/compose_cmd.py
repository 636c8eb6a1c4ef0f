"""``sentio compose``: the one-shots of docker-compose.yml that lock its doors (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load


@click.group("compose")
def compose_group() -> None:
    """Credentials and Kafka ACLs of the Docker Compose deployment (its one-shot services)."""


@compose_group.command("secrets")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
def secrets_command(root: Path) -> None:
    """Generate the deployment's passwords, Kafka CA and broker certificate into ROOT (the
    `secrets` volume) once, and write each service's folder of it."""
    from sentio_iot.stack.compose_secrets import ComposeSecrets

    folders = ComposeSecrets(root).ensure()
    click.echo(f"compose secrets: {len(folders)} service folders in {root} (passwords kept)")


@compose_group.command("kafka-access")
@config_option
@click.option(
    "--secrets",
    "secrets_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/run/secrets/sentio"),
    show_default=True,
    help="The kafka-access folder of the secrets volume (tls/ca.pem, credentials/).",
)
def kafka_access(config_path: Path | None, secrets_dir: Path) -> None:
    """Create or update every role's Kafka user and ACLs, as the broker's super user
    (the same as `sentio stack up --secure`)."""
    from sentio_iot.stack.compose_secrets import BROKER_NAMES, CA_NAME
    from sentio_iot.stack.kafka_secure import KafkaAccess, SecureKafkaFiles, apply_access

    config = load(config_path)
    files = SecureKafkaFiles.in_folder(secrets_dir, BROKER_NAMES, CA_NAME)
    access = KafkaAccess(config.topics.prefix, config.streams.app_id)
    bindings = apply_access(files, config.kafka.bootstrap_servers, access)
    click.echo(f"kafka access: users admin, producer, streams, sink, api; {bindings} ACLs")
