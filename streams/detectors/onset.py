"""Report the onset of an anomaly, then stay quiet for a while, whatever the threshold.

An operator wants one alert when a machine starts to misbehave, not one per reading while it
does; NAB likewise rewards the earliest detection in a window and charges every further one
outside it. The threshold that turns scores into alerts is chosen later (per deployment, or
corpus-wide by NAB), so the gate must work for every threshold at once:

* a score passes when it is above the ``level`` of the gate; it then raises the level to
  itself, and the level stays there for ``quiet`` readings, then drops back to 0;
* every other score is damped to ``score * damp``.

So for any threshold ``t``, once a reading at or above ``t`` has passed, the next ``quiet``
readings pass only if they score higher still: one alert per episode, at its onset (plus
one per new maximum). Scores below ``floor`` pass without raising the level (they alert
nobody). The gate is causal: it only looks at scores already seen.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field


def fire_field(default: float) -> Any:
    """A detector's ``fire`` parameter (the gate's ``floor``), with that detector's default."""
    return Field(
        default,
        ge=0,
        le=1,
        description="Smallest score that silences lower ones for `quiet` readings.",
    )


def quiet_field(default: int) -> Any:
    """A detector's ``quiet`` parameter, with that detector's default."""
    return Field(
        default,
        ge=0,
        description="Readings after an onset in which lower scores are damped (0: off).",
    )


def damp_field() -> Any:
    """A detector's ``damp`` parameter (0.0: the damped scores vanish)."""
    return Field(0.0, ge=0, le=1, description="Factor applied to the damped scores.")


class OnsetGate:
    """At most one passing score per level per ``quiet`` readings; ``quiet = 0``: no gating."""

    __slots__ = ("_level", "_since", "damp", "floor", "quiet")

    def __init__(
        self, floor: float, quiet: int, damp: float, level: float = 0.0, since: int = 0
    ) -> None:
        self.floor, self.quiet, self.damp = floor, quiet, damp
        self._level, self._since = level, since

    def gate(self, score: float) -> float:
        if self.quiet == 0:
            return score
        self._since += 1
        if self._since > self.quiet:
            self._level = 0.0
        if score <= self._level:
            return score * self.damp
        if score >= self.floor:
            self._level, self._since = score, 0
        return score

    def to_list(self) -> list[float]:
        return [self._level, self._since]

    @classmethod
    def from_list(cls, floor: float, quiet: int, damp: float, data: list[float]) -> OnsetGate:
        level, since = data
        return cls(floor, quiet, damp, float(level), int(since))
