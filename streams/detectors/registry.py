"""Find detectors by name through the ``sentio_iot.detectors`` entry point group.

Lazy: listing names imports no detector; a detector's module is imported when it is first
created. Third parties plug in the same way Sentio does, in their own ``pyproject.toml``::

    [project.entry-points."sentio_iot.detectors"]
    seasonal_esd = "sentio_seasonal:SeasonalEsdDetector"
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError

from sentio_iot.config_errors import format_validation_error
from sentio_iot.errors import ConfigError
from sentio_iot.streams.detectors.base import Detector

DETECTOR_GROUP = "sentio_iot.detectors"

AnyDetector = Detector[Any]


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=DETECTOR_GROUP)}


def detector_names() -> list[str]:
    """Names of the installed detectors, sorted."""
    return sorted(_entry_points())


def detector_class(name: str) -> type[AnyDetector]:
    """The detector class registered as ``name``; an unknown name lists the known ones."""
    points = _entry_points()
    if name not in points:
        known = ", ".join(sorted(points)) or "none"
        raise ConfigError(f"unknown detector '{name}'; installed detectors: {known}")
    try:
        cls = points[name].load()
    except ImportError as exc:
        raise ConfigError(f"detector {name} cannot be loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise ConfigError(f"entry point {name} = {points[name].value} is not a Detector")
    return cls


def create_detector(
    name: str, params: Mapping[str, Any] | None = None, *, path: str = ""
) -> AnyDetector:
    """A fresh detector from its name and raw params (from YAML).

    Bad params raise ``ConfigError`` with one problem per field, each prefixed by ``path``
    (where the params sit in the configuration file, e.g. ``anomaly.detector.params``).
    """
    cls = detector_class(name)
    try:
        validated = cls.params_model.model_validate(dict(params or {}))
    except ValidationError as exc:
        raise ConfigError(
            f"invalid parameters for detector '{name}'", format_validation_error(exc, path)
        ) from exc
    return cls(validated)


def restore_detector(state: Mapping[str, Any]) -> AnyDetector:
    """A detector continued from ``Detector.to_state()``, found by the name stored in it."""
    return detector_class(str(state.get("detector"))).from_state(state)
