"""Ensemble: several detectors on the same series, their scores combined, gated at onset.

Each member is any registered detector with its own params (give members ``quiet: 0`` so
that the ensemble, not each member, decides what an onset is). Per reading every member
scores; the ensemble's score is the ``max`` (any member alarmed) or the ``mean`` (members
agree) of the members' scores, then ``OnsetGate`` keeps one report per episode. The
reported expected value and band are the first warm member's. The state holds each
member's own state, so members keep their versions and round trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sentio_iot.streams.detectors.base import COLD, Detector, DetectorParams, Score, is_reading
from sentio_iot.streams.detectors.onset import OnsetGate, damp_field, fire_field, quiet_field


class Member(BaseModel):
    """One detector of the ensemble."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: str = Field(description="Registered detector name, e.g. 'surprise'.")
    params: dict[str, Any] = Field(default_factory=dict, description="That detector's params.")


def _default_members() -> tuple[Member, ...]:
    return (
        Member(detector="surprise", params={"quiet": 0}),
        Member(detector="forecast", params={"quiet": 0}),
    )


class EnsembleParams(DetectorParams):
    """Parameters of the ensemble detector."""

    members: tuple[Member, ...] = Field(
        default_factory=_default_members, min_length=1, description="Detectors combined."
    )
    combine: Literal["max", "mean"] = Field("max", description="How member scores combine.")
    fire: float = fire_field(0.2)
    quiet: int = quiet_field(150)
    damp: float = damp_field()


class EnsembleDetector(Detector[EnsembleParams]):
    """Max or mean of several detectors' scores, reported at the onset."""

    name = "ensemble"
    version = 1
    alert_threshold = 0.85  # the default ensemble's NAB low-FP corpus threshold (0.848)
    params_model = EnsembleParams

    def __init__(self, params: EnsembleParams | None = None) -> None:
        from sentio_iot.streams.detectors.registry import create_detector  # registry imports us

        super().__init__(params)
        p = self.params
        self._members = [
            create_detector(m.detector, m.params, path=f"members.{i}.params")
            for i, m in enumerate(p.members)
        ]
        self._gate = OnsetGate(p.fire, p.quiet, p.damp)
        self._last = COLD

    def update(self, ts_us: int, value: float) -> Score:
        if not is_reading(value):
            return self._last
        scores = [member.update(ts_us, value) for member in self._members]
        warm = [s for s in scores if s.warm]
        if not warm:
            self._last = COLD
            return COLD
        values = [s.score for s in warm]
        combined = max(values) if self.params.combine == "max" else sum(values) / len(values)
        first = warm[0]
        self._last = Score(
            min(1.0, max(0.0, self._gate.gate(combined))),
            expected=first.expected,
            lower=first.lower,
            upper=first.upper,
            warm=True,
        )
        return self._last

    def _export_state(self) -> dict[str, Any]:
        return {
            "members": [member.to_state() for member in self._members],
            "gate": self._gate.to_list(),
            "last": self._last.to_dict(),
        }

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        from sentio_iot.streams.detectors.registry import restore_detector

        members = state["members"]
        if len(members) != len(self._members):
            raise ValueError(f"{len(members)} member states for {len(self._members)} members")
        self._members = [restore_detector(m) for m in members]
        p = self.params
        self._gate = OnsetGate.from_list(p.fire, p.quiet, p.damp, state["gate"])
        self._last = Score.from_dict(state["last"])
