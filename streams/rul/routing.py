"""Which model serves a device: by a device label, else by the metrics the device reports.

Models are loaded from the store on first use and kept; a configured model that the store
does not have is logged once and its devices get no predictions (the stream keeps going).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from sentio_iot.errors import ConfigError
from sentio_iot.settings.rul import RulSettings
from sentio_iot.streams.rul.predictor import RulPredictor
from sentio_iot.streams.rul.store import ModelStore

log = logging.getLogger(__name__)


class ModelRouter:
    def __init__(self, settings: RulSettings, store: ModelStore) -> None:
        self.settings = settings
        self.store = store
        self._predictors: dict[str, RulPredictor | None] = {}

    def predictor(self, name: str) -> RulPredictor | None:
        """The loaded current version of ``name``; None (logged once) when it cannot be loaded."""
        if name not in self._predictors:
            try:
                self._predictors[name] = RulPredictor(self.store.load(name))
            except ConfigError as exc:
                log.warning(
                    "RUL model %s unavailable, its devices get no predictions: %s", name, exc
                )
                self._predictors[name] = None
        return self._predictors[name]

    def model_for(self, labels: Mapping[str, str], metrics: Collection[str]) -> str | None:
        """The model name for a device with these labels reporting these metrics, if any."""
        by_label = self.settings.models.get(labels.get(self.settings.label, ""))
        if by_label is not None:
            return by_label
        for name in self.settings.feature_models:
            predictor = self.predictor(name)
            if predictor is not None and all(m in metrics for m in predictor.metrics):
                return name
        return None

    def reload(self) -> None:
        """Forget loaded models, so the next prediction serves the store's current versions."""
        self._predictors.clear()
