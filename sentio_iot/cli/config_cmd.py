"""``sentio config``: validate and show a deployment configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    from sentio_iot.secret_values import mask

    config = load_config(path)
    data = config.model_dump(mode="json")
    data["producers"] = _connector_sections(config.producers)
    click.echo(yaml.safe_dump(mask(data), sort_keys=False), nl=False)


def _connector_sections(producers: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each device as its connector's model reads it (its SecretStr fields masked)."""
    from sentio_iot.plugins import load_connector_plugin

    shown: dict[str, Any] = {}
    for protocol, devices in producers.items():
        model = load_connector_plugin(protocol).load_config_model()
        shown[protocol] = [
            model.model_validate(device).model_dump(mode="json", exclude_unset=True, by_alias=True)
            for device in devices
        ]
    return shown


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
