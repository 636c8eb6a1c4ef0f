"""Settings: Online anomaly detection in the stream: which detector, its parameters and threshold."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from sentio_iot.settings import Section


class AnomalySettings(Section):
    """Online anomaly detection in the stream: which detector, its parameters and threshold."""

    detector: str = Field(
        "novelty",
        min_length=1,
        description="Detector run per device and metric (an entry point of the sentio_iot.detectors group).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of the detector (its own model checks them at start-up); empty: its defaults.",
    )
    threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Score (0..1) at or above which a reading is anomalous. Empty: the detector's own alert threshold (novelty 0.202, calibrated 0.203, surprise 0.8, forecast and ensemble 0.85, robust_zscore 0.9; docs/ml-anomaly.md); scales differ by detector.",
    )
    include: list[str] = Field(
        default_factory=list,
        description="Metric names (shell patterns, e.g. temp*) to score; empty: every numeric metric.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Metric names (shell patterns) never scored; wins over include.",
    )
    refractory_s: float = Field(
        60.0,
        ge=0,
        description="One anomaly per episode (readings at or above the threshold in a row); an episode starting less than this (event time, s) after the last emitted anomaly of the same device and metric is not emitted. 0: every episode.",
    )
    skip_bad_quality: bool = Field(
        True, description="Values of quality BAD are neither scored nor learned from."
    )

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, name: str) -> str:
        from sentio_iot.streams.detectors.registry import detector_names

        known = detector_names()
        if name not in known:
            raise ValueError(f"unknown detector {name!r}; installed: {', '.join(known)}")
        return name

    @model_validator(mode="after")
    def _params_fit_the_detector(self) -> AnomalySettings:
        from sentio_iot.streams.detectors.registry import detector_class

        try:
            detector_class(self.detector).params_model.model_validate(self.params)
        except ValidationError as exc:
            problems = "; ".join(
                f"params.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(
                f"invalid parameters for detector {self.detector!r}: {problems}"
            ) from None
        return self
