"""``sentio models``: list the versioned RUL models, promote a version, roll back."""

from __future__ import annotations

from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.streams.rul.store import ModelStore


def _store(config_path: Path | None, store_dir: Path | None) -> ModelStore:
    return ModelStore(store_dir or load(config_path).streams.rul.resolved_store_dir())


store_option = click.option(
    "--store",
    "store_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Model store folder (default streams.rul.store_dir).",
)


@click.group("models")
def models_group() -> None:
    """The versioned model store: list, promote, rollback."""


@models_group.command("list")
@config_option
@store_option
def list_models(config_path: Path | None, store_dir: Path | None) -> None:
    """Every model and version; '*' marks the version the stream serves."""
    store = _store(config_path, store_dir)
    click.echo(f"{'':2}{'model':<18}{'version':>8}  {'origin':<8}{'RMSE':>8}  {'unit':<7}created")
    for name in store.names():
        for version in store.versions(name):
            metrics = version.metadata.get("metrics", {})
            rmse = metrics.get("rmse")
            click.echo(
                f"{'*' if version.current else '':2}{name:<18}{version.version:>8}  "
                f"{'shipped' if version.shipped else 'user':<8}"
                f"{'-' if rmse is None else format(rmse, '.2f'):>8}  "
                f"{version.metadata.get('rul_unit', '?'):<7}{version.metadata.get('created', '?')}"
            )


@models_group.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@config_option
@store_option
def promote(name: str, version: int, config_path: Path | None, store_dir: Path | None) -> None:
    """Serve VERSION of model NAME (workers pick it up on restart)."""
    store = _store(config_path, store_dir)
    promoted = store.promote(name, version)
    click.echo(f"{name}: version {promoted.version} is current")


@models_group.command("rollback")
@click.argument("name")
@config_option
@store_option
def rollback(name: str, config_path: Path | None, store_dir: Path | None) -> None:
    """Serve the version of NAME that served before the last promotion."""
    store = _store(config_path, store_dir)
    current = store.rollback(name)
    click.echo(f"{name}: rolled back to version {current.version}")
