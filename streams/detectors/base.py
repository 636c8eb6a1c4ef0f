"""The detector interface: one value in, one score out, and a state that survives a restart.

A detector is fed one reading at a time, in time order, and needs no training: it warms up
on the first readings by itself. Its whole memory is ``to_state()`` (plain JSON), so a Faust
table can persist it and a restarted worker continues exactly where the old one stopped::

    detector = RobustZScoreDetector(RobustZScoreParams(half_life=100))
    score = detector.update(ts_us, value)
    table[key] = detector.to_state()
    ...
    detector = RobustZScoreDetector.from_state(table[key])

Implementations register under the ``sentio_iot.detectors`` entry point group (see
``registry``) and subclass ``Detector`` with their own ``DetectorParams`` model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from sentio_iot.errors import DataError


@dataclass(frozen=True, slots=True)
class Score:
    """How anomalous one reading is, and what the detector expected instead.

    ``score`` is in [0, 1]; 0.5 means "on the edge of the band". ``expected``, ``lower`` and
    ``upper`` are None while the detector has no estimate yet. ``warm`` is False during
    warm-up, when ``score`` is always 0.0.
    """

    score: float
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    warm: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score!r}")

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies each field, a third of a commit's export
        return {
            "score": self.score,
            "expected": self.expected,
            "lower": self.lower,
            "upper": self.upper,
            "warm": self.warm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Score:
        return cls(**data)


COLD = Score(0.0)  # what a detector answers before it has seen enough readings


class LastScore:
    """The last warm score of a detector whose per-point path keeps only its numbers
    (``_last_fields``): the ``Score`` is built when asked, and exported without one."""

    _last_score: Score
    _last_fields: tuple[float, float | None, float | None, float | None] | None

    @property
    def _last(self) -> Score:
        fields = self._last_fields
        if fields is not None:
            score, expected, lower, upper = fields
            self._last_score = Score(score, expected=expected, lower=lower, upper=upper, warm=True)
            self._last_fields = None
        return self._last_score

    @_last.setter
    def _last(self, score: Score) -> None:
        self._last_score, self._last_fields = score, None

    def _last_dict(self) -> dict[str, Any]:
        fields = self._last_fields
        if fields is None:
            return self._last_score.to_dict()
        score, expected, lower, upper = fields
        return {"score": score, "expected": expected, "lower": lower, "upper": upper, "warm": True}


class DetectorParams(BaseModel):
    """Base of every detector's parameters: unknown fields are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=DetectorParams)


class StateError(DataError):
    """A persisted detector state that this detector cannot continue from."""


class Detector(ABC, Generic[P]):
    """One online detector for one series.

    Subclasses set ``name`` (the entry point name), ``version`` (bump it when the state
    layout or the arithmetic changes, so an old state is refused instead of misread),
    ``params_model`` and ``alert_threshold`` (the score its defaults should alert at, used
    when the stream's settings name none), and implement ``update``, ``_export_state`` and
    ``_restore_state``.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    params_model: ClassVar[type[DetectorParams]]
    alert_threshold: ClassVar[float] = 0.5

    def __init__(self, params: P | None = None) -> None:
        self.params: P = params if params is not None else cast(P, self.params_model())
        self._latest = COLD

    @abstractmethod
    def update(self, ts_us: int, value: float) -> Score:
        """Score one reading (microseconds since the epoch, in time order) and learn from it."""

    def observe(self, ts_us: int, value: float) -> float:
        """``update`` for a caller that mostly needs the score (the stream's anomaly step):
        the score, or -1.0 while the detector is not warm. ``latest()`` is the whole
        ``Score`` of a warm answer. A detector may override both to skip building a
        ``Score`` per reading; the numbers are those of ``update``."""
        result = self._latest = self.update(ts_us, value)
        return result.score if result.warm else -1.0

    def latest(self) -> Score:
        """The ``Score`` of the last ``observe`` that answered a score (not -1.0)."""
        return self._latest

    @abstractmethod
    def _export_state(self) -> dict[str, Any]:
        """The detector's memory as JSON-able values (finite floats, ints, lists, dicts)."""

    @abstractmethod
    def _restore_state(self, state: Mapping[str, Any]) -> None:
        """Load what ``_export_state`` returned into a freshly constructed detector."""

    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue identically: who, which version, params, memory."""
        return {
            "detector": self.name,
            "version": self.version,
            "params": self.params.model_dump(mode="json"),
            "state": self._export_state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild a detector from ``to_state()``; a state of another detector or version fails."""
        found = (state.get("detector"), state.get("version"))
        if found != (cls.name, cls.version):
            raise StateError(
                f"state of detector {found[0]!r} version {found[1]!r} cannot be loaded "
                f"into {cls.name!r} version {cls.version}",
                fix="drop the stored state; the detector warms up again",
            )
        params = cls.params_model.model_validate(state.get("params", {}))
        return cls.from_memory(cast(P, params), state.get("state"))

    def memory(self) -> dict[str, Any]:
        """Only the memory of ``to_state()``: for a store that keeps who and params once."""
        return self._export_state()

    @classmethod
    def from_memory(cls, params: P, memory: Any) -> Self:
        """A detector with ``params`` (already validated) continuing from ``memory()``."""
        detector = cls(params)
        try:
            detector._restore_state(memory)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"state of detector {cls.name!r} is damaged: {exc!r}") from exc
        return detector


def is_reading(value: float) -> bool:
    """NaN and ±inf are gaps, not readings: detectors skip them."""
    return math.isfinite(value)
