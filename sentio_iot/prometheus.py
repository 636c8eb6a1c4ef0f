"""Pieces of the Prometheus text exposition format (version 0.0.4) every worker renders."""

from __future__ import annotations

from collections.abc import Iterable


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
