"""Options shared by several subcommands."""

from __future__ import annotations

from collections.abc import Callable
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
