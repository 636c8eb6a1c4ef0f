"""``sentio config``: validate and show a deployment configuration."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from sentio_iot.config import load_config


@click.group("config")
def config_group() -> None:
    """Check and show configuration."""


@config_group.command("validate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def validate(path: Path) -> None:
    """Print every problem in PATH at once, each with its path and the fix; exit 2 if any."""
    config = load_config(path)
    devices = sum(len(v) for v in config.producers.values())
    click.echo(
        f"{path}: valid ({devices} device(s) in {len(config.producers)} connector section(s))"
    )


@config_group.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
def show(path: Path | None) -> None:
    """Print the effective configuration (file + environment + defaults), secrets hidden."""
    config = load_config(path)
    data = config.model_dump(mode="json")
    if data["kafka"].get("sasl_password"):
        data["kafka"]["sasl_password"] = "***"
    if data["schema_registry"].get("basic_auth"):
        data["schema_registry"]["basic_auth"] = "***"
    click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@config_group.command("reference")
@click.option(
    "--connectors",
    is_flag=True,
    help="Print the connectors reference (docs/connectors.md) instead: options and examples.",
)
def reference(connectors: bool) -> None:
    """Print the configuration reference (Markdown) generated from the models."""
    if connectors:
        from sentio_iot.connector_reference import render_connectors

        click.echo(render_connectors(), nl=False)
        return
    from sentio_iot.config_reference import render_all

    click.echo(render_all(), nl=False)
