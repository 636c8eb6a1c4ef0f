"""Pieces of the Prometheus text exposition format (version 0.0.4) every worker renders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["counter", "gauge"]


@dataclass
class Family:
    """One metric name with its help text, label names and a value per label set."""

    name: str
    help: str
    type: MetricType
    labels: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)

    def inc(self, *label_values: str, by: float = 1) -> None:
        """Add ``by`` to the series with these label values (in the order of ``labels``)."""
        self.values[label_values] = self.values.get(label_values, 0) + by

    def get(self, *label_values: str) -> float:
        return self.values.get(label_values, 0)


def render_families(families: Iterable[Family]) -> str:
    """Families with their HELP and TYPE lines and one sample per label set, sorted."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for label_values, value in sorted(family.values.items()):
            lines.append(
                sample_line(family.name, zip(family.labels, label_values, strict=True), value)
            )
    return "\n".join(lines) + "\n"


def escape(value: str) -> str:
    """A label value as the exposition format quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def sample_line(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    """``name{a="x",b="y"} value``."""
    pairs = ",".join(f'{label}="{escape(text)}"' for label, text in labels)
    return f"{name}{{{pairs}}} {format_value(value)}" if pairs else f"{name} {format_value(value)}"
