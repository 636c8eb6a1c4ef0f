"""Read the Prometheus text exposition format the workers serve on ``/metrics``."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# name, optional {labels}, value; an optional timestamp after the value is ignored.
LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    """Every sample in an exposition; comments and lines it cannot read are skipped."""
    samples = []
    for line in text.splitlines():
        match = LINE.match(line.strip())
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append(Sample(name, _labels(labels or ""), number))
    return samples


def _labels(text: str) -> dict[str, str]:
    return {
        key: re.sub(r"\\[\\\"n]", lambda m: UNESCAPE[m.group(0)], value)
        for key, value in LABEL.findall(text)
    }


def total(samples: Iterable[Sample], name: str, **labels: str) -> float | None:
    """Sum of the samples called ``name`` whose labels include ``labels``; None if none."""
    values = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) if values else None


def by_label(samples: Iterable[Sample], name: str, label: str) -> dict[str, float]:
    """Sum of the samples called ``name`` per value of ``label``."""
    sums: dict[str, float] = {}
    for s in samples:
        if s.name == name and math.isfinite(s.value):
            key = s.labels.get(label, "")
            sums[key] = sums.get(key, 0.0) + s.value
    return sums
