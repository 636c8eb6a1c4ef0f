"""Plugin registry: connectors (and later detectors, sink backends) found by entry point.

Loaded lazily: listing plugins imports nothing heavy; a plugin's config model and
implementation are imported on first use. An unknown name answers with the names
that exist. Third parties register in their own ``pyproject.toml``::

    [project.entry-points."sentio_iot.connectors"]
    bacnet = "sentio_bacnet:PLUGIN"
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from sentio_iot.errors import ConfigError

CONNECTOR_GROUP = "sentio_iot.connectors"


def import_string(path: str) -> Any:
    """Import ``package.module:attribute``."""
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


@dataclass(frozen=True, kw_only=True)
class ConnectorPlugin:
    """What a connector declares about itself; heavy parts are import strings."""

    name: str
    summary: str
    config_model: str
    connector: str
    extra: str | None = None  # the pip extra that brings its protocol library

    def load_config_model(self) -> type[BaseModel]:
        model = import_string(self.config_model)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"connector {self.name}: {self.config_model} is not a pydantic model")
        return model

    def load_connector(self) -> Any:
        try:
            return import_string(self.connector)
        except ImportError as exc:
            hint = (
                f"pip install 'sentio-iot[{self.extra}]'" if self.extra else "reinstall sentio-iot"
            )
            raise ConfigError(f"connector {self.name} cannot be loaded: {exc}; {hint}") from exc


@cache
def _connector_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=CONNECTOR_GROUP)}


def connector_names() -> list[str]:
    return sorted(_connector_entry_points())


def load_connector_plugin(name: str) -> ConnectorPlugin:
    points = _connector_entry_points()
    if name not in points:
        known = ", ".join(sorted(points)) or "none"
        raise ConfigError(f"unknown connector '{name}'; installed connectors: {known}")
    plugin = points[name].load()
    if not isinstance(plugin, ConnectorPlugin):
        raise ConfigError(f"entry point {name} = {points[name].value} is not a ConnectorPlugin")
    return plugin


# -- sink backends ---------------------------------------------------------------------------

SINK_GROUP = "sentio_iot.sinks"


@dataclass(frozen=True, kw_only=True)
class SinkPlugin:
    """What a sink backend declares: its settings model and writer, as import strings.

    ``section`` names the sub-section of ``sinks`` the writer reads (``sinks.<section>``);
    the writer class is built as ``writer_class(config)`` with the whole SentioConfig.
    """

    name: str
    summary: str
    settings_model: str
    writer: str
    section: str = ""  # defaults to ``name``

    @property
    def section_name(self) -> str:
        return self.section or self.name

    def load_settings_model(self) -> type[BaseModel]:
        model = import_string(self.settings_model)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"sink {self.name}: {self.settings_model} is not a pydantic model")
        return model

    def load_writer(self) -> Any:
        try:
            return import_string(self.writer)
        except ImportError as exc:
            raise ConfigError(
                f"sink {self.name} cannot be loaded: {exc}; reinstall sentio-iot"
            ) from exc


@cache
def _sink_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=SINK_GROUP)}


def sink_names() -> list[str]:
    return sorted(_sink_entry_points())


def load_sink_plugin(name: str) -> SinkPlugin:
    points = _sink_entry_points()
    if name not in points:
        known = ", ".join(sorted(points)) or "none"
        raise ConfigError(f"unknown sink '{name}'; installed sinks: {known}")
    try:
        plugin = points[name].load()
    except ImportError as exc:
        raise ConfigError(f"sink {name} cannot be loaded: {exc}") from exc
    if not isinstance(plugin, SinkPlugin):
        raise ConfigError(f"entry point {name} = {points[name].value} is not a SinkPlugin")
    return plugin
