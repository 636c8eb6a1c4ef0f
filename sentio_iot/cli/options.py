"""Options shared by several subcommands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from sentio_iot.config import SentioConfig, load_config

F = TypeVar("F", bound=Callable[..., Any])


def config_option(function: F) -> F:
    """``-c/--config FILE``; without it, defaults plus environment overrides."""
    option = click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        envvar="SENTIO_CONFIG",
        help="Deployment configuration (YAML). Default: built-in defaults + SENTIO_* variables.",
    )
    return option(function)


def load(config_path: Path | None) -> SentioConfig:
    return load_config(config_path)


def access_options(principal: str) -> Callable[[F], F]:
    """``--role`` and ``--tenants`` of an API principal (``principal``: "user", "key")."""
    role = click.option(
        "--role",
        type=click.Choice(["viewer", "operator", "admin"]),
        default="viewer",
        show_default=True,
        help="viewer reads; operator also acknowledges and clears alerts; admin also manages users.",
    )
    tenants = click.option(
        "--tenants",
        default=None,
        help=f"Comma-separated tenants the {principal} sees; * for all. "
        "Default: the deployment's tenant.",
    )

    def decorate(function: F) -> F:
        return role(tenants(function))

    return decorate


def when(ts: float | None) -> str:
    """A Unix time as the CLI's tables show it (UTC), or - when there is none."""
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
